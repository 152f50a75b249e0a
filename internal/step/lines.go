package step

import (
	"bytes"
	"io"
	"sync"

	"github.com/troupe/troupe/internal/report"
)

// lineWriter turns a byte stream into one HostLine event per complete line.
type lineWriter struct {
	mu     sync.Mutex
	stream string
	emit   func(report.Event)
	buf    []byte
}

func (x *Exec) lines(stream string) io.Writer {
	return &lineWriter{stream: stream, emit: x.Emit}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(report.Event{Kind: report.HostLine, Stream: w.stream, Text: string(bytes.TrimRight(w.buf[:i], "\r"))})
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// flush emits what is left after the last newline.
func flush(ws ...io.Writer) {
	for _, w := range ws {
		lw, ok := w.(*lineWriter)
		if !ok {
			continue
		}
		lw.mu.Lock()
		if len(lw.buf) > 0 {
			lw.emit(report.Event{Kind: report.HostLine, Stream: lw.stream, Text: string(lw.buf)})
			lw.buf = nil
		}
		lw.mu.Unlock()
	}
}
