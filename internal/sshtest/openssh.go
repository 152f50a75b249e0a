package sshtest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	skh "github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"

	"github.com/troupe/troupe/internal/testenv"
	"github.com/troupe/troupe/internal/transport"
)

// Test accounts created (idempotently) by StartOpenSSH.
const (
	TestUser   = "troupe-test"           // non-root, NOPASSWD sudo
	PwUser     = "troupe-pw"             // non-root, sudo needs PwPassword
	PwPassword = "troupe-pw-S3cret-4711" // PwUser's login and sudo password

	sshdPath       = "/usr/sbin/sshd"
	sftpServerPath = "/usr/lib/openssh/sftp-server"
)

// OpenSSHOptions configures a real sshd.
type OpenSSHOptions struct {
	PasswordUser bool   // also create PwUser, whose sudo needs PwPassword
	MaxSessions  int    // sshd MaxSessions; 0 is OpenSSH's default 10
	NoSFTP       bool   // no sftp subsystem
	ExtraConfig  string // appended to sshd_config
}

// OpenSSH is a running Debian sshd on 127.0.0.1.
type OpenSSH struct {
	Dir  string // sshd_config, host keys, client key, log (sshd.log)
	Addr string // 127.0.0.1:port
	Port int
	// Configs ready to Dial (strict host key checking against KnownHosts).
	Root   transport.Config // user root
	User   transport.Config // TestUser, Sudo: true
	PwUser transport.Config // PwUser, Sudo: true, SudoPassword: PwPassword (only with PasswordUser)
	// KnownHosts pins only the ed25519 host key while sshd also offers ecdsa
	// and rsa: the setup that breaks plain x/crypto knownhosts.
	KnownHosts string
	HostKeys   map[string]ssh.PublicKey // "ed25519", "ecdsa", "rsa"
	KeyFile    string                   // the client's private key (accepted for every user)
	Log        string                   // sshd's log file

	stop func() error
}

// Stop kills sshd and its connection processes.
func (o *OpenSSH) Stop() error { return o.stop() }

// OpenSSHUnavailable returns why a real sshd cannot be started here, or nil.
func OpenSSHUnavailable() error {
	if runtime.GOOS != "linux" {
		return errors.New("real-OpenSSH tests need Linux")
	}
	if os.Geteuid() != 0 {
		return errors.New("real-OpenSSH tests need root (they start sshd and create users)")
	}
	for _, p := range []string{sshdPath, sftpServerPath, "/usr/bin/sudo", "/usr/sbin/useradd", "/usr/sbin/chpasswd"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s missing: run scripts/install-test-deps.sh", p)
		}
	}
	return nil
}

// StartOpenSSH starts /usr/sbin/sshd on a free port from a generated config in
// a temp dir and stops it at the end of the test. It skips the test when not
// root, not on Linux, or without sshd (fails it in CI: package testenv).
func StartOpenSSH(t testing.TB, opts OpenSSHOptions) *OpenSSH {
	t.Helper()
	if err := OpenSSHUnavailable(); err != nil {
		testenv.Skip(t, err)
	}
	dir := t.TempDir()
	// sshd reads AuthorizedKeysFile as the user: let TestUser traverse.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	o, stop, err := StartOpenSSHAt(dir, port, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	return o
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// StartOpenSSHAt starts sshd on 127.0.0.1:port with its files in dir (which
// TestUser must be able to traverse), for use outside tests (benchmarks start
// hundreds). The host and client keys are generated once per process and
// shared by all servers. stop kills sshd and waits for it.
func StartOpenSSHAt(dir string, port int, opts OpenSSHOptions) (*OpenSSH, func() error, error) {
	if err := OpenSSHUnavailable(); err != nil {
		return nil, nil, err
	}
	if err := ensureUsers(opts.PasswordUser); err != nil {
		return nil, nil, err
	}
	k, err := sharedKeys()
	if err != nil {
		return nil, nil, err
	}
	o := &OpenSSH{
		Dir:        dir,
		Addr:       net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port:       port,
		KnownHosts: filepath.Join(dir, "known_hosts"),
		HostKeys:   map[string]ssh.PublicKey{},
		KeyFile:    filepath.Join(dir, "client_key"),
		Log:        filepath.Join(dir, "sshd.log"),
	}
	akDir := filepath.Join(dir, "authorized_keys")
	if err := os.MkdirAll(akDir, 0o755); err != nil {
		return nil, nil, err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, nil, err
	}
	files := map[string][]byte{o.KeyFile: k.clientPEM}
	for _, u := range []string{"root", TestUser, PwUser} {
		files[filepath.Join(akDir, u)] = k.clientAuthorized
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "Port %d\nListenAddress 127.0.0.1\n", port)
	for _, h := range k.host {
		p := filepath.Join(dir, "host_"+h.name)
		files[p] = h.pem
		o.HostKeys[h.name] = h.pub
		fmt.Fprintf(&cfg, "HostKey %s\n", p)
	}
	maxSessions := opts.MaxSessions
	if maxSessions == 0 {
		maxSessions = 10
	}
	fmt.Fprintf(&cfg, "AuthorizedKeysFile %s/%%u\n", akDir)
	fmt.Fprintf(&cfg, "PidFile %s\n", filepath.Join(dir, "sshd.pid"))
	fmt.Fprintf(&cfg, "MaxSessions %d\n", maxSessions)
	cfg.WriteString("StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n" +
		"PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\n" +
		"PrintMotd no\nMaxStartups 100:30:200\nLogLevel INFO\n")
	if !opts.NoSFTP {
		fmt.Fprintf(&cfg, "Subsystem sftp %s\n", sftpServerPath)
	}
	cfg.WriteString(opts.ExtraConfig + "\n")
	files[filepath.Join(dir, "sshd_config")] = []byte(cfg.String())
	files[o.KnownHosts] = []byte(skh.Line([]string{o.Addr}, o.HostKeys["ed25519"]) + "\n")
	for p, b := range files {
		mode := os.FileMode(0o600)
		if strings.HasPrefix(p, akDir) {
			mode = 0o644
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			return nil, nil, err
		}
		if err := os.Chmod(p, mode); err != nil {
			return nil, nil, err
		}
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, nil, err
	}
	logf, err := os.OpenFile(o.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start sshd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	o.stop = func() error {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		})
		return nil
	}
	if err := waitListening(o.Addr, exited); err != nil {
		_ = o.stop()
		log, _ := os.ReadFile(o.Log)
		return nil, nil, fmt.Errorf("sshd on %s: %w; log:\n%s", o.Addr, err, log)
	}

	base := transport.Config{
		Address:        "127.0.0.1",
		Port:           port,
		PrivateKey:     o.KeyFile,
		KnownHosts:     o.KnownHosts,
		HostKeyCheck:   transport.HostKeyStrict,
		ConnectTimeout: 10 * time.Second,
	}
	o.Root, o.User, o.PwUser = base, base, base
	o.Root.Host, o.Root.User = "openssh-root-"+strconv.Itoa(port), "root"
	o.User.Host, o.User.User, o.User.Sudo = "openssh-user-"+strconv.Itoa(port), TestUser, true
	if opts.PasswordUser {
		o.PwUser.Host, o.PwUser.User, o.PwUser.Sudo = "openssh-pw-"+strconv.Itoa(port), PwUser, true
		o.PwUser.SudoPassword = PwPassword
	} else {
		o.PwUser = transport.Config{}
	}
	return o, o.stop, nil
}

func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("sshd exited")
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("sshd not listening after 10s")
}

type hostKey struct {
	name string
	pem  []byte
	pub  ssh.PublicKey
}

type keys struct {
	host             []hostKey
	clientPEM        []byte
	clientAuthorized []byte
}

var (
	keysOnce sync.Once
	keysVal  keys
	keysErr  error
)

// sharedKeys generates host keys (ed25519, ecdsa, rsa) and a client key once per process.
func sharedKeys() (keys, error) {
	keysOnce.Do(func() {
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			keysErr = err
			return
		}
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			keysErr = err
			return
		}
		rs, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			keysErr = err
			return
		}
		for _, k := range []struct {
			name string
			key  any
		}{{"ed25519", ed}, {"ecdsa", ec}, {"rsa", rs}} {
			block, err := ssh.MarshalPrivateKey(k.key, "")
			if err != nil {
				keysErr = err
				return
			}
			signer, err := ssh.NewSignerFromKey(k.key)
			if err != nil {
				keysErr = err
				return
			}
			keysVal.host = append(keysVal.host, hostKey{k.name, pem.EncodeToMemory(block), signer.PublicKey()})
		}
		_, cl, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			keysErr = err
			return
		}
		block, err := ssh.MarshalPrivateKey(cl, "troupe-test-client")
		if err != nil {
			keysErr = err
			return
		}
		signer, err := ssh.NewSignerFromKey(cl)
		if err != nil {
			keysErr = err
			return
		}
		keysVal.clientPEM = pem.EncodeToMemory(block)
		keysVal.clientAuthorized = ssh.MarshalAuthorizedKey(signer.PublicKey())
	})
	return keysVal, keysErr
}

var (
	usersMu   sync.Mutex
	usersDone = map[bool]bool{}
)

// ensureUsers creates TestUser (and PwUser) with their sudoers files, once
// per process, under a file lock shared with other test processes.
func ensureUsers(pw bool) error {
	usersMu.Lock()
	defer usersMu.Unlock()
	if usersDone[pw] {
		return nil
	}
	lock, err := os.OpenFile("/run/lock/troupe-sshtest.lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	if err := ensureUser(TestUser); err != nil {
		return err
	}
	// UsePAM no refuses locked ("!") accounts: "*" allows key logins only.
	if err := run("", "usermod", "-p", "*", TestUser); err != nil {
		return err
	}
	if err := writeSudoers(TestUser, TestUser+" ALL=(ALL:ALL) NOPASSWD: ALL\n"); err != nil {
		return err
	}
	if pw {
		if err := ensureUser(PwUser); err != nil {
			return err
		}
		if err := run(PwUser+":"+PwPassword+"\n", "chpasswd"); err != nil {
			return err
		}
		// timestamp_timeout=0: every sudo really asks, so tests exercise the password path.
		if err := writeSudoers(PwUser, "Defaults:"+PwUser+" timestamp_timeout=0, lecture=never\n"+
			PwUser+" ALL=(ALL:ALL) ALL\n"); err != nil {
			return err
		}
	}
	usersDone[pw] = true
	return nil
}

func ensureUser(name string) error {
	if exec.Command("id", "-u", name).Run() == nil {
		return nil
	}
	return run("", "useradd", "--create-home", "--shell", "/bin/bash", name)
}

func writeSudoers(name, content string) error {
	path := "/etc/sudoers.d/" + name
	if b, err := os.ReadFile(path); err == nil && string(b) == content {
		return nil
	}
	tmp := path + ".tmp" // sudo ignores names with a dot
	if err := os.WriteFile(tmp, []byte(content), 0o440); err != nil {
		return err
	}
	if err := run("", "visudo", "-cf", tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func run(stdin, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
