package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/troupe/troupe/internal/safefile"
	"github.com/troupe/troupe/internal/secret"
)

// Log is the debug log file that every run writes (k0sctl style): every
// event in full, timestamped, as text, plus the runner's own debug lines
// (Logf, or Debug events from anywhere). Print Path when the run fails.
//
// Format: one line per event, "TIME KIND key=value ...", values quoted when
// they contain spaces or quotes; Diff and Stderr follow as "    | " lines.
type Log struct {
	mu     sync.Mutex
	f      *os.File
	path   string
	red    *secret.Redactor
	closed bool
	err    error // first write error
}

// DefaultLogPath names a fresh log file under stateDir:
// stateDir/logs/troupe-YYYYMMDD-HHMMSS-PID.log.
func DefaultLogPath(stateDir string) string {
	name := fmt.Sprintf("troupe-%s-%d.log", time.Now().Format("20060102-150405"), os.Getpid())
	return filepath.Join(stateDir, "logs", name)
}

// NewLog opens (appending) the log file at path, mode 0600, creating its
// directory with mode 0700 when missing. The log holds remote output that
// may be sensitive even after redaction, hence owner-only, and only in a
// directory no other local user controls, never through a link
// (safefile).
func NewLog(path string, red *secret.Redactor) (*Log, error) {
	f, err := safefile.OpenAppend(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open debug log: %w", err)
	}
	if err := f.Chmod(0o600); err != nil { // an existing file keeps its mode on open
		f.Close()
		return nil, fmt.Errorf("open debug log: %w", err)
	}
	return &Log{f: f, path: path, red: red}, nil
}

// Path is the file's path, to print when the run fails.
func (l *Log) Path() string { return l.path }

// Logf writes a debug line (a Debug event), redacted like everything else.
func (l *Log) Logf(format string, args ...any) {
	l.Emit(Event{Kind: Debug, Text: fmt.Sprintf(format, args...)})
}

// Emit writes e with all its fields.
func (l *Log) Emit(e Event) {
	e = redact(l.red, e)
	var b strings.Builder
	b.WriteString(e.Time.Format("2006-01-02T15:04:05.000Z07:00"))
	b.WriteString(" " + string(e.Kind))
	field := func(k, v string) {
		if v != "" {
			b.WriteString(" " + k + "=" + quote(v))
		}
	}
	field("plan", e.Plan)
	field("step", e.Step)
	field("title", e.Title)
	field("host", e.Host)
	field("hosts", strings.Join(e.Hosts, ","))
	field("stream", e.Stream)
	field("status", string(e.Status))
	if e.Duration != 0 {
		field("duration", e.Duration.String())
	}
	field("reason", e.Reason)
	field("error", e.Error)
	field("text", e.Text)
	b.WriteString("\n")
	block := func(name, text string) {
		text = strings.TrimRight(text, "\n")
		if text == "" {
			return
		}
		b.WriteString("    " + name + ":\n")
		for _, line := range strings.Split(text, "\n") {
			b.WriteString("    | " + line + "\n")
		}
	}
	block("stderr", e.Stderr)
	block("diff", e.Diff)

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.err != nil {
		return
	}
	_, l.err = l.f.WriteString(b.String())
}

// Close syncs and closes the file and returns the first error.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.err
	}
	l.closed = true
	if err := l.f.Sync(); err != nil && l.err == nil {
		l.err = err
	}
	if err := l.f.Close(); err != nil && l.err == nil {
		l.err = err
	}
	return l.err
}

// quote leaves simple values bare and Go-quotes the rest, so each event
// stays on one line and fields split unambiguously.
func quote(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r == '"' || r == '=' || r == '\\' || r == 0x7f
	}) {
		return strconv.Quote(s)
	}
	return s
}
