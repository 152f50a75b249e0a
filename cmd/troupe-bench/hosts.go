package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/troupe/troupe/internal/sshtest"
)

// host is one benchmark target: a real sshd on 127.0.0.1 with its own
// directory, and a scratch directory owned by the login user where every
// tool does its work.
type host struct {
	Name    string
	Port    int
	Dir     string // sshd's files (root-owned, 0711)
	Scratch string // Dir/work, owned by troupe-test
	stop    func() error
}

// fleet is every target plus the files shared by all three tools.
type fleet struct {
	Hosts      []*host
	KnownHosts string // one known_hosts with every server's ed25519 key
	Key        string // the client's private key (the same for every server)
	uid, gid   int
}

// raiseNoFile raises RLIMIT_NOFILE to its hard limit explicitly, so the
// tools started from here inherit it too (the Go runtime's own raise is
// undone in children), and checks it is enough for n targets.
func raiseNoFile(n int) (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", rl.Max, err)
		}
	}
	// Per target, at worst: a few sockets and pipes in the tool, ssh/scp
	// processes of its own, and the sshd server's listener and log.
	if need := uint64(16*n + 256); rl.Cur < need {
		return rl.Cur, fmt.Errorf("RLIMIT_NOFILE is %d, %d targets need about %d: raise the hard limit (ulimit -Hn)", rl.Cur, n, need)
	}
	return rl.Cur, nil
}

// freePorts reserves n distinct free ports on 127.0.0.1 (all listeners are
// held until every port is known, then released).
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startFleet starts n sshd under base, a few at a time. On error, the ones
// already started are stopped.
func startFleet(ctx context.Context, base string, n int, extraConfig string) (*fleet, error) {
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	f := &fleet{Hosts: make([]*host, n)}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 8)
	)
	for i := range n {
		h := &host{Name: fmt.Sprintf("h%03d", i+1), Port: ports[i]}
		h.Dir = filepath.Join(base, h.Name)
		h.Scratch = filepath.Join(h.Dir, "work")
		f.Hosts[i] = h
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			err := os.Mkdir(h.Dir, 0o711)
			var o *sshtest.OpenSSH
			if err == nil {
				o, h.stop, err = sshtest.StartOpenSSHAt(h.Dir, h.Port, sshtest.OpenSSHOptions{ExtraConfig: extraConfig})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
				return
			}
			if f.Key == "" {
				f.Key = o.KeyFile
			}
		}()
	}
	wg.Wait()
	if len(errs) == 0 && ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	if len(errs) > 0 {
		f.stop()
		return nil, errors.Join(errs...)
	}
	u, err := user.Lookup(sshtest.TestUser)
	if err != nil {
		f.stop()
		return nil, err
	}
	f.uid, _ = strconv.Atoi(u.Uid)
	f.gid, _ = strconv.Atoi(u.Gid)
	var kh strings.Builder
	for _, h := range f.Hosts {
		b, err := os.ReadFile(filepath.Join(h.Dir, "known_hosts"))
		if err == nil {
			kh.Write(b)
			err = os.Mkdir(h.Scratch, 0o755)
		}
		if err == nil {
			err = os.Chown(h.Scratch, f.uid, f.gid)
		}
		if err != nil {
			f.stop()
			return nil, err
		}
	}
	f.KnownHosts = filepath.Join(base, "known_hosts")
	if err := os.WriteFile(f.KnownHosts, []byte(kh.String()), 0o644); err != nil {
		f.stop()
		return nil, err
	}
	return f, nil
}

// stop stops every sshd that was started.
func (f *fleet) stop() {
	var wg sync.WaitGroup
	for _, h := range f.Hosts {
		if h == nil || h.stop == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = h.stop() }()
	}
	wg.Wait()
}

// clean empties every scratch directory, so each run does the full work
// (an upload of an unchanged file would otherwise be skipped).
func (f *fleet) clean() error {
	for _, h := range f.Hosts {
		es, err := os.ReadDir(h.Scratch)
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := os.RemoveAll(filepath.Join(h.Scratch, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
