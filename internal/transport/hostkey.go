package transport

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strconv"
	"sync"

	skh "github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xkh "golang.org/x/crypto/ssh/knownhosts"

	"github.com/troupe/troupe/internal/safefile"
)

// Host key policies for Config.HostKeyCheck.
const (
	HostKeyStrict    = "strict"     // unknown or changed keys are refused (default)
	HostKeyAcceptNew = "accept-new" // unknown keys are appended to known_hosts; changed keys are refused
	HostKeyOff       = "off"        // every key is accepted; callers must print InsecureHostKeyWarning
)

// HostKeyPolicy returns cfg's normalised host key policy ("" is strict) or an
// error for an unknown value.
func HostKeyPolicy(cfg Config) (string, error) {
	switch cfg.HostKeyCheck {
	case "", HostKeyStrict:
		return HostKeyStrict, nil
	case HostKeyAcceptNew, HostKeyOff:
		return cfg.HostKeyCheck, nil
	}
	return "", fmt.Errorf("host %s: host_key_check %q: want strict, accept-new or off", cfg.Host, cfg.HostKeyCheck)
}

// InsecureHostKeyWarning returns the warning the caller must print before
// dialling a host whose policy is "off", and "" for every other policy. Dial
// itself prints nothing.
func InsecureHostKeyWarning(cfg Config) string {
	if cfg.HostKeyCheck != HostKeyOff {
		return ""
	}
	return fmt.Sprintf("WARNING: host key checking is off for %s: its identity is not verified and the connection can be intercepted", hostName(cfg))
}

// knownHostsMu serialises reading-then-appending known_hosts files (accept-new).
var knownHostsMu sync.Mutex

// hostKeyChecker verifies one host's key for one dial. The callback records
// the refusal in err so Dial can return it unwrapped by x/crypto's text.
type hostKeyChecker struct {
	cfg    Config
	policy string
	path   string // known_hosts
	algos  []string
	err    error
}

func newHostKeyChecker(cfg Config) (*hostKeyChecker, error) {
	policy, err := HostKeyPolicy(cfg)
	if err != nil {
		return nil, err
	}
	h := &hostKeyChecker{cfg: cfg, policy: policy}
	if policy == HostKeyOff {
		return h, nil
	}
	h.path, err = knownHostsPath(cfg)
	if err != nil {
		return nil, err
	}
	db, err := loadKnownHosts(h.path)
	if err != nil {
		return nil, err
	}
	if db != nil {
		// Offer only the key types known_hosts has for this host: otherwise the
		// server may pick another type and a valid entry looks like a mismatch
		// (goph issues #50/#81).
		h.algos = db.HostKeyAlgorithms(dialAddr(cfg))
	}
	return h, nil
}

func knownHostsPath(cfg Config) (string, error) {
	if cfg.KnownHosts != "" {
		return expandHome(cfg.KnownHosts)
	}
	home, err := safefile.Home()
	if err != nil {
		return "", fmt.Errorf("host %s: no known_hosts file: %w", hostName(cfg), err)
	}
	return filepath.Join(home, ".ssh", "known_hosts"), nil
}

// loadKnownHosts returns nil (no entries) for a missing file. It parses the
// file once while it is unchanged (see fileCache).
func loadKnownHosts(path string) (*skh.HostKeyDB, error) {
	db, err := knownHostsFiles.load(path, path, func() (*skh.HostKeyDB, error) { return skh.NewDB(path) })
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("known_hosts %s: %w", path, err)
	}
	return db, nil
}

func (h *hostKeyChecker) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	if h.policy == HostKeyOff {
		return nil
	}
	err := h.check(hostname, remote, key)
	if err != nil {
		h.err = err
	}
	return err
}

func (h *hostKeyChecker) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	if h.policy == HostKeyAcceptNew {
		knownHostsMu.Lock()
		defer knownHostsMu.Unlock()
	}
	// Re-read under the lock: another dial may just have added this host.
	db, err := loadKnownHosts(h.path)
	if err != nil {
		return err
	}
	var kerr error = &xkh.KeyError{}
	if db != nil {
		kerr = db.HostKeyCallback()(hostname, remote, key)
	}
	switch {
	case kerr == nil:
		return nil
	case skh.IsHostKeyChanged(kerr):
		return h.changed(kerr, key)
	case !skh.IsHostUnknown(kerr):
		return fmt.Errorf("%w: %s: %v", ErrHostKey, hostName(h.cfg), kerr)
	case h.policy == HostKeyAcceptNew:
		return h.appendKey(hostname, remote, key)
	}
	port := h.cfg.Port
	if port == 0 {
		port = 22
	}
	return fmt.Errorf("%w: %s (%s) is not in %s (it offered %s key %s).\n"+
		"Check that fingerprint with the host's administrator, then add the host with:\n"+
		"    ssh-keyscan -p %d %s >> %s\n"+
		"or set host_key_check: accept-new to trust it on first use",
		ErrHostKey, hostName(h.cfg), dialAddr(h.cfg), h.path, key.Type(), ssh.FingerprintSHA256(key),
		port, address(h.cfg), h.path)
}

func (h *hostKeyChecker) changed(kerr error, key ssh.PublicKey) error {
	var ke *xkh.KeyError
	where := h.path
	if errors.As(kerr, &ke) && len(ke.Want) > 0 {
		where = ke.Want[0].Filename + ":" + strconv.Itoa(ke.Want[0].Line)
	}
	return fmt.Errorf("%w: THE HOST KEY OF %s (%s) HAS CHANGED.\n"+
		"Someone could be intercepting the connection (man-in-the-middle), or the host was reinstalled.\n"+
		"It offered %s key %s, which does not match %s.\n"+
		"If the change is expected, remove the old key with `ssh-keygen -R %s -f %s` and add the new one",
		ErrHostKey, hostName(h.cfg), dialAddr(h.cfg), key.Type(), ssh.FingerprintSHA256(key), where,
		Quote(skh.Normalize(dialAddr(h.cfg))), h.path)
}

// appendKey adds an unknown host's key (accept-new); the caller holds knownHostsMu.
func (h *hostKeyChecker) appendKey(hostname string, remote net.Addr, key ssh.PublicKey) error {
	// only in a directory no other local user controls, never through a
	// link: a key planted in known_hosts would pass strict checking later
	f, err := safefile.OpenAppend(h.path, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %s: adding key: %v", ErrHostKey, hostName(h.cfg), err)
	}
	err = skh.WriteKnownHost(f, hostname, remote, key)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: %s: adding key to %s: %v", ErrHostKey, hostName(h.cfg), h.path, err)
	}
	return nil
}
