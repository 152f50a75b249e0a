package transport_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/transport"
)

// freezer is a TCP proxy that can stop passing bytes, like a peer that
// vanished without closing the connection.
type freezer struct {
	ln   net.Listener
	gate sync.RWMutex
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			go f.pipe(c, s)
			go f.pipe(s, c)
		}
	}()
	return f
}

func (f *freezer) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		f.gate.RLock() // blocks while frozen
		_, err = dst.Write(buf[:n])
		f.gate.RUnlock()
		if err != nil {
			return
		}
	}
}

func (f *freezer) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func TestKeepAliveDropsDeadConnection(t *testing.T) {
	defer transport.SetKeepAliveInterval(100 * time.Millisecond)()
	srv := sshtest.StartServer(t)
	proxy := newFreezer(t, srv.Addr)
	cfg := srv.Config
	cfg.Port = proxy.port()
	// known_hosts has [127.0.0.1]:<server port>; accept the proxy's address.
	cfg.HostKeyCheck = transport.HostKeyAcceptNew
	cfg.KnownHosts = t.TempDir() + "/known_hosts_" + strconv.Itoa(cfg.Port)
	c := dial(t, cfg)
	run(t, c, transport.Cmd{Command: "true"})

	done := make(chan error, 1)
	go func() {
		_, err := c.Run(context.Background(), transport.Cmd{Command: "sleep 30"})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // keepalives are answered meanwhile
	proxy.gate.Lock()                  // the peer goes silent
	defer proxy.gate.Unlock()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run on a dead connection returned no error")
		}
		mustContain(t, "error", err.Error(), "keepalives unanswered")
	case <-time.After(10 * time.Second):
		t.Fatal("Run still blocked 10s after the peer went silent (keepalive 100ms)")
	}
}
