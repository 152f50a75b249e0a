// Package transport runs commands and moves files on one host.
//
// A Conn is one long-lived connection per host for the whole run: the SSH
// implementation multiplexes sessions on a single TCP connection (capped below
// sshd's MaxSessions), the local implementation runs on this machine. Steps
// never see SSH; they see a Conn.
package transport

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"time"
)

// Conn is an open connection to one host. Every method is safe for concurrent use.
type Conn interface {
	// Run runs c.Command with `sh -c` on the host. A non-zero exit status is
	// not an error: it is reported in Result.ExitCode. err is for transport
	// faults and cancellation; on ctx cancel the remote command is signalled
	// (SIGTERM, then the session is closed) and ctx.Err() is returned.
	Run(ctx context.Context, c Cmd) (Result, error)
	// Upload writes f atomically: a temp file beside the destination, mode and
	// owner set, then renamed over the destination. With f.Sudo the file is
	// staged in a private directory and moved into place with `sudo -n`.
	Upload(ctx context.Context, f File) error
	// Download reads a remote file (through `sudo -n cat` when sudo is true).
	// A missing file returns an error matching fs.ErrNotExist.
	Download(ctx context.Context, path string, sudo bool) ([]byte, error)
	// Close ends the connection.
	Close() error
}

// Cmd is one remote command.
type Cmd struct {
	Command string    // a shell command line; run as `sh -c Command`
	Sudo    bool      // wrap in `sudo -n` (or `sudo -S` with a password fed on stdin, never argv)
	Stdin   io.Reader // optional
	// Hidden: Command holds a secret, so it is sent on stdin ahead of Stdin
	// and never appears in any argv on the host (which ps shows to all).
	Hidden bool
	// Stdout and Stderr, when set, receive the output as it arrives (the
	// Result still carries all of it, up to MaxOutput).
	Stdout, Stderr io.Writer
	// MaxOutput, when more than 0, bounds what the Result keeps of each of
	// stdout and stderr, in bytes: the rest is read (so the command is not
	// blocked) and dropped, and Result.Truncated says so. A caller reading
	// an untrusted host's answer sets it so the host cannot fill memory.
	MaxOutput int
}

// Result is what a finished command left behind.
type Result struct {
	Stdout   string
	Stderr   string
	ExitCode int
	// Truncated: stdout or stderr was longer than Cmd.MaxOutput and was
	// cut there.
	Truncated bool
}

// File is one file to write on a host.
type File struct {
	Path    string
	Content []byte
	Mode    fs.FileMode // 0 means 0644
	Owner   string      // user name; "" keeps the connecting user (or root via sudo)
	Group   string      // group name; "" keeps the default
	Sudo    bool
}

// ErrHostKey is wrapped by every host-key refusal (unknown or changed key).
var ErrHostKey = errors.New("host key verification failed")

// ErrUnreachable is wrapped by a failure to connect at all: the TCP
// connection (direct, or from the jump host) refused, without a route or
// timed out, or no SSH handshake within connect_timeout. A host that
// answers and refuses (ErrHostKey, failed authentication) is not
// unreachable, nor is a name DNS does not know (a typo more likely than a
// dead host), nor a dial its context cut short. A plan's
// ignore_unreachable steps skip a host whose dial wraps it.
var ErrUnreachable = errors.New("host unreachable")

// unreachable marks err, a failure to connect, as ErrUnreachable; its text
// is err's.
type unreachable struct{ err error }

func (e *unreachable) Error() string   { return e.err.Error() }
func (e *unreachable) Unwrap() []error { return []error{e.err, ErrUnreachable} }

// Config says how to reach and log in to one host. It is resolved per host
// by the inventory (every level may set it) and never printed with secrets.
type Config struct {
	Host            string        // inventory name, for messages
	Address         string        // DNS name or IP; defaults to Host
	Port            int           // default 22
	User            string        // default: the current user
	PrivateKey      string        // path; "~" is expanded
	Passphrase      string        `yaml:"-"` // resolved at run time (prompt or env); secret
	PassphraseEnv   string        // env var holding the key's passphrase
	Agent           bool          // use $SSH_AUTH_SOCK
	Jump            *Config       `yaml:"-"` // jump host, resolved by the inventory
	JumpSpec        string        // as written: an inventory host name or [user@]host[:port]
	ConnectTimeout  time.Duration // TCP connect + SSH handshake deadline; default 10s
	Sudo            bool          // run commands of sudo steps through sudo
	SudoPassword    string        `yaml:"-"` // resolved at run time; fed on stdin, never argv; secret
	SudoPasswordEnv string        // env var holding the sudo password
	HostKeyCheck    string        // strict (default) | accept-new | off
	KnownHosts      string        // known_hosts path; default ~/.ssh/known_hosts
}
