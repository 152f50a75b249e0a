package transport

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
	"time"

	"github.com/melbahja/goph"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/troupe/troupe/internal/safefile"
)

const (
	// DefaultConnectTimeout bounds TCP connect plus SSH handshake when
	// Config.ConnectTimeout is 0.
	DefaultConnectTimeout = 10 * time.Second
	// SessionsPerConn caps concurrent sessions on one connection, below
	// OpenSSH's default MaxSessions (10) with room for the sftp session.
	SessionsPerConn = 8

	keepAliveMisses = 3
	cancelGrace     = 2 * time.Second
)

// keepAliveInterval is a variable so tests can shorten it.
var keepAliveInterval = 15 * time.Second

// sshConn is a Conn over one SSH connection.
type sshConn struct {
	cfg    Config
	client *goph.Client
	jump   *sshConn // bastion, closed with this connection
	sem    chan struct{}
	root   bool // logged in as root: sudo is not needed

	sftpMu  sync.Mutex
	sftp    *sftp.Client
	sftpErr error // the subsystem is unavailable: use exec fallbacks

	idMu sync.Mutex
	ids  map[string]int // "u:name" / "g:name" → numeric id

	killMu    sync.Mutex
	killQueue []killWait
	killing   bool

	closeOnce sync.Once
	closed    chan struct{}
	lostMu    sync.Mutex
	lost      error // why the connection was dropped by keepalive
}

// Dial opens one SSH connection to cfg's host, through cfg.Jump when set.
// TCP connect and handshake together are bounded by cfg.ConnectTimeout (and
// ctx). Host keys are checked per cfg.HostKeyCheck (see HostKeyStrict etc.);
// refusals wrap ErrHostKey. An encrypted private key without a passphrase
// fails with an error wrapping ErrKeyPassphrase. cfg.Passphrase and
// cfg.SudoPassword fall back to the variables named by PassphraseEnv and
// SudoPasswordEnv.
func Dial(ctx context.Context, cfg Config) (Conn, error) {
	c, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func dial(ctx context.Context, cfg Config) (*sshConn, error) {
	cfg = withDefaults(cfg)
	hk, err := newHostKeyChecker(cfg)
	if err != nil {
		return nil, err
	}
	auth, closeAuth, err := authMethods(cfg)
	if err != nil {
		return nil, err
	}
	defer closeAuth()

	var jump *sshConn
	if cfg.Jump != nil {
		jump, err = dial(ctx, *cfg.Jump)
		if err != nil {
			return nil, fmt.Errorf("host %s: jump host: %w", cfg.Host, err)
		}
	}
	c, err := handshake(ctx, cfg, jump, hk, auth)
	if err != nil {
		if jump != nil {
			jump.Close()
		}
		return nil, err
	}
	return c, nil
}

func handshake(ctx context.Context, cfg Config, jump *sshConn, hk *hostKeyChecker, auth []ssh.AuthMethod) (*sshConn, error) {
	addr := dialAddr(cfg)
	tctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	// The conn deadline can fire a moment before the context notices.
	expired := func(c context.Context) error {
		if err := c.Err(); err != nil {
			return err
		}
		if dl, ok := c.Deadline(); ok && !time.Now().Before(dl) {
			return context.DeadlineExceeded
		}
		return nil
	}
	timedOut := func(err error) error {
		if cerr := expired(ctx); cerr != nil {
			return fmt.Errorf("host %s: connecting to %s: %w", cfg.Host, addr, cerr)
		}
		if cerr := expired(tctx); cerr != nil {
			return &unreachable{fmt.Errorf("host %s: connecting to %s: no SSH handshake within %v (connect_timeout): %w",
				cfg.Host, addr, cfg.ConnectTimeout, cerr)}
		}
		return err
	}

	var conn net.Conn
	var err error
	if jump != nil {
		conn, err = jump.client.DialContext(tctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(tctx, "tcp", addr)
	}
	if err != nil {
		return nil, timedOut(dialFailed(fmt.Errorf("host %s: connecting to %s: %w", cfg.Host, addr, err)))
	}
	// Bound the handshake: a deadline where supported (TCP), and closing the
	// conn when tctx ends (works for channels through a jump host too).
	if dl, ok := tctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(tctx, func() { conn.Close() })
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              auth,
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: hk.algos,
		Timeout:           cfg.ConnectTimeout,
	})
	if !stop() && err == nil { // tctx ended just after the handshake
		cc.Close()
		err = errors.New("handshake interrupted")
	}
	if err != nil {
		conn.Close()
		if hk.err != nil {
			return nil, hk.err
		}
		if errors.Is(err, ErrHostKey) {
			return nil, err
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("host %s: %s@%s: authentication failed (private_key %q, agent %v): %w",
				cfg.Host, cfg.User, addr, cfg.PrivateKey, cfg.Agent, err)
		}
		return nil, timedOut(fmt.Errorf("host %s: ssh handshake with %s: %w", cfg.Host, addr, err))
	}
	_ = conn.SetDeadline(time.Time{})

	c := &sshConn{
		cfg:    cfg,
		client: &goph.Client{Client: ssh.NewClient(cc, chans, reqs)},
		jump:   jump,
		sem:    make(chan struct{}, SessionsPerConn),
		root:   cfg.User == "root",
		ids:    map[string]int{},
		closed: make(chan struct{}),
	}
	go c.keepAlive(keepAliveInterval)
	return c, nil
}

// dialFailed is the TCP dial's failure err: unreachable (refused, no route,
// timed out, directly or from the jump host), except for a name DNS does
// not know and a jump host that forbids forwarding (its configuration,
// not the host's state).
func dialFailed(err error) error {
	var dns *net.DNSError
	var ch *ssh.OpenChannelError
	switch {
	case errors.As(err, &dns) && dns.IsNotFound:
	case errors.As(err, &ch) && ch.Reason == ssh.Prohibited:
	default:
		return &unreachable{err}
	}
	return err
}

// keepAlive sends keepalive@openssh.com every interval and drops the
// connection after keepAliveMisses unanswered requests, so pending commands
// fail instead of hanging on a dead peer.
func (c *sshConn) keepAlive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	misses := 0
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case <-c.closed:
			return
		case err := <-reply:
			if err != nil {
				c.drop(fmt.Errorf("connection lost: %w", err))
				return
			}
			misses = 0
		case <-time.After(every):
			misses++
			if misses >= keepAliveMisses {
				c.drop(fmt.Errorf("connection lost: %d keepalives unanswered", misses))
				return
			}
		}
	}
}

func (c *sshConn) drop(why error) {
	c.lostMu.Lock()
	c.lost = why
	c.lostMu.Unlock()
	c.Close()
}

// Close closes the sftp client, the connection and its jump host.
func (c *sshConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		c.sftpMu.Lock()
		if c.sftp != nil {
			c.sftp.Close()
		}
		c.sftpMu.Unlock()
		err = c.client.Close()
		if c.jump != nil {
			c.jump.Close()
		}
	})
	return err
}

// connErr decorates a session error with the keepalive verdict, if any.
func (c *sshConn) connErr(err error) error {
	c.lostMu.Lock()
	lost := c.lost
	c.lostMu.Unlock()
	if lost != nil {
		return fmt.Errorf("host %s: %w (%v)", c.cfg.Host, lost, err)
	}
	return fmt.Errorf("host %s: %w", c.cfg.Host, err)
}

func withDefaults(cfg Config) Config {
	if cfg.Address == "" {
		cfg.Address = cfg.Host
	}
	if cfg.Host == "" {
		cfg.Host = cfg.Address
	}
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.User == "" {
		cfg.User = currentUser()
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Passphrase == "" && cfg.PassphraseEnv != "" {
		cfg.Passphrase = os.Getenv(cfg.PassphraseEnv)
	}
	if cfg.SudoPassword == "" && cfg.SudoPasswordEnv != "" {
		cfg.SudoPassword = os.Getenv(cfg.SudoPasswordEnv)
	}
	return cfg
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

func hostName(cfg Config) string {
	if cfg.Host != "" {
		return cfg.Host
	}
	return cfg.Address
}

func address(cfg Config) string {
	if cfg.Address != "" {
		return cfg.Address
	}
	return cfg.Host
}

func dialAddr(cfg Config) string {
	port := cfg.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(address(cfg), strconv.Itoa(port))
}

// expandHome expands a leading "~/" (or a lone "~") using $HOME, or the
// user database's home without it (safefile.Home).
func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := safefile.Home()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, strings.TrimPrefix(p[1:], "/")), nil
}
