// Package sshtest provides SSH servers for tests: an in-process one
// (gliderlabs/ssh + pkg/sftp, fast and hermetic) and Debian's real OpenSSH
// sshd (StartOpenSSH), which is what the production hosts run.
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	gssh "github.com/gliderlabs/ssh"
	"github.com/pkg/sftp"
	skh "github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"

	"github.com/troupe/troupe/internal/transport"
)

// Hermetic isolates a test from the developer's SSH setup: HOME becomes a
// temp dir (no ~/.ssh/known_hosts, no default keys) and SSH_AUTH_SOCK is
// blanked. It uses t.Setenv, so the test cannot be parallel.
func Hermetic(t testing.TB) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
}

// Server is an in-process SSH server. Commands run as the test process's
// user through /bin/sh; signals are forwarded to the command's process group.
type Server struct {
	// Config dials this server: address, port, the client key, a
	// known_hosts file pinning the host key, strict checking, 5s timeout.
	Config     transport.Config
	Addr       string        // 127.0.0.1:port
	Port       int           // the port
	KnownHosts string        // known_hosts file with the host key
	KeyFile    string        // the client's private key
	HostKey    ssh.PublicKey // nil for a silent server
	HostSigner ssh.Signer    // nil for a silent server

	close func()
	stats *stats
}

// Close stops the server; t.Cleanup does it too.
func (s *Server) Close() { s.close() }

type options struct {
	silent         bool
	noSFTP         bool
	passphrase     string
	handshakeDelay time.Duration
}

// Option configures StartServer.
type Option func(*options)

// Silent makes a TCP listener that accepts connections and never speaks SSH,
// for handshake timeout tests.
func Silent() Option { return func(o *options) { o.silent = true } }

// NoSFTP leaves out the sftp subsystem, as on hardened hosts.
func NoSFTP() Option { return func(o *options) { o.noSFTP = true } }

// KeyPassphrase encrypts the client key with p (Config.Passphrase stays empty).
func KeyPassphrase(p string) Option { return func(o *options) { o.passphrase = p } }

// SlowHandshakes makes the server wait d before it answers each new
// connection, one connection at a time, as a host whose CPU is the queue:
// n connections at once wait n×d for the last one's handshake.
func SlowHandshakes(d time.Duration) Option { return func(o *options) { o.handshakeDelay = d } }

// StartServer starts an in-process SSH server on 127.0.0.1:<free port> with an
// ed25519 host key. It accepts only its generated client key, supports
// exec, the sftp subsystem and direct-tcpip to 127.0.0.1 (so it can be a
// jump host), and stops at the end of the test.
func StartServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port,
		KnownHosts: filepath.Join(dir, "known_hosts")}
	clientPub, keyFile, err := WriteClientKey(dir, o.passphrase)
	if err != nil {
		t.Fatal(err)
	}
	s.KeyFile = keyFile
	s.Config = transport.Config{
		Host:           "inproc-" + strconv.Itoa(s.Port),
		Address:        "127.0.0.1",
		Port:           s.Port,
		User:           currentUser(),
		PrivateKey:     keyFile,
		KnownHosts:     s.KnownHosts,
		HostKeyCheck:   transport.HostKeyStrict,
		ConnectTimeout: 5 * time.Second,
	}
	if o.silent {
		s.close = silentServe(ln)
		t.Cleanup(s.close)
		if err := os.WriteFile(s.KnownHosts, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return s
	}

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s.HostKey, s.HostSigner = signer.PublicKey(), signer
	st := &stats{Stats: Stats{SFTP: map[string]int{}}}
	s.stats = st
	srv := &gssh.Server{
		PublicKeyHandler: func(_ gssh.Context, key gssh.PublicKey) bool {
			return gssh.KeysEqual(key, clientPub)
		},
		LocalPortForwardingCallback: func(_ gssh.Context, host string, _ uint32) bool {
			return host == "127.0.0.1" || host == "localhost"
		},
		ChannelHandlers: map[string]gssh.ChannelHandler{
			"session": func(srv *gssh.Server, conn *ssh.ServerConn, ch ssh.NewChannel, ctx gssh.Context) {
				st.add(func() { st.Sessions++ })
				gssh.DefaultSessionHandler(srv, conn, ch, ctx)
			},
			"direct-tcpip": gssh.DirectTCPIPHandler,
		},
		ConnCallback: func(_ gssh.Context, c net.Conn) net.Conn {
			st.add(func() { st.Conns++ })
			if d := o.handshakeDelay; d > 0 {
				st.queue.Lock()
				time.Sleep(d)
				st.queue.Unlock()
			}
			return c
		},
	}
	srv.Handler = func(sess gssh.Session) {
		st.add(func() { st.Commands = append(st.Commands, sess.RawCommand()) })
		execHandler(sess)
	}
	if !o.noSFTP {
		srv.SubsystemHandlers = map[string]gssh.SubsystemHandler{"sftp": func(sess gssh.Session) {
			st.add(func() { st.SFTPChannels++ })
			sftpHandler(sftpCounter{sess, st, &frames{}})
		}}
	}
	srv.AddHostKey(signer)
	go func() { _ = srv.Serve(ln) }()
	var once sync.Once
	s.close = func() { once.Do(func() { _ = srv.Close() }) }
	t.Cleanup(s.close)
	line := skh.Line([]string{s.Addr}, s.HostKey) + "\n"
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// silentServe accepts connections and holds them open without a word.
func silentServe(ln net.Listener) func() {
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
	}
}

// execHandler runs the raw command with /bin/sh in its own process group,
// forwarding "signal" requests to the group.
func execHandler(s gssh.Session) {
	cmd := exec.Command("/bin/sh", "-c", s.RawCommand())
	cmd.Env = append(os.Environ(), s.Environ()...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s.Stderr()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sigs := make(chan gssh.Signal, 4)
	s.Signals(sigs)
	if err := cmd.Start(); err != nil {
		_, _ = io.WriteString(s.Stderr(), err.Error()+"\n")
		_ = s.Exit(127)
		return
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				_ = syscall.Kill(-cmd.Process.Pid, unixSignal(sig))
			case <-s.Context().Done(): // client went away: do not leave orphans
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGHUP)
				return
			case <-stop:
				return
			}
		}
	}()
	err := cmd.Wait()
	s.Signals(nil)
	close(stop)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if code < 0 {
			code = 255
		}
		_ = s.Exit(code)
		return
	}
	_ = s.Exit(0)
}

func unixSignal(s gssh.Signal) syscall.Signal {
	switch s {
	case gssh.SIGINT:
		return syscall.SIGINT
	case gssh.SIGKILL:
		return syscall.SIGKILL
	case gssh.SIGHUP:
		return syscall.SIGHUP
	case gssh.SIGQUIT:
		return syscall.SIGQUIT
	}
	return syscall.SIGTERM
}

func sftpHandler(s io.ReadWriteCloser) {
	srv, err := sftp.NewServer(s)
	if err != nil {
		return
	}
	_ = srv.Serve()
	_ = srv.Close()
}

// WriteClientKey writes a new ed25519 private key (OpenSSH format,
// encrypted when passphrase != "") to dir/id_ed25519 and its public half
// to dir/id_ed25519.pub.
func WriteClientKey(dir, passphrase string) (ssh.PublicKey, string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "troupe-test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "troupe-test", []byte(passphrase))
	}
	if err != nil {
		return nil, "", err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		return nil, "", err
	}
	return sshPub, path, nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}
