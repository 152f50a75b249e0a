package transport

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/melbahja/goph"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// ErrKeyPassphrase is wrapped by Dial's error when the private key is
// encrypted and no passphrase was given (or the given one is wrong), so the
// caller can prompt and dial again with Config.Passphrase set.
var ErrKeyPassphrase = errors.New("private key needs a passphrase")

// authMethods builds the auth methods for cfg: the private key (cfg.PrivateKey,
// or when neither a key nor the agent is configured the default
// ~/.ssh/id_{ed25519,ecdsa,rsa} that load without prompting) and the agent.
// closeAuth releases the agent socket once the handshake is done.
func authMethods(cfg Config) (methods []ssh.AuthMethod, closeAuth func(), err error) {
	closeAuth = func() {}
	methods, err = keyMethods(cfg)
	if err != nil || !cfg.Agent {
		return methods, closeAuth, err
	}
	conn, err := net.Dial("unix", os.Getenv("SSH_AUTH_SOCK"))
	if err != nil {
		return nil, closeAuth, fmt.Errorf("host %s: ssh agent: %w", cfg.Host, err)
	}
	closeAuth = func() { conn.Close() }
	return append(methods, ssh.PublicKeysCallback(agent.NewClient(conn).Signers)), closeAuth, nil
}

// CheckAuth finds, before anything is dialled, what Dial would refuse about
// cfg's credentials (and its jump hosts'): a missing, unreadable, encrypted
// or too-open private key, agent: true without $SSH_AUTH_SOCK, or no
// credentials at all.
func CheckAuth(cfg Config) error {
	for c := &cfg; c != nil; c = c.Jump {
		if _, err := keyMethods(*c); err != nil {
			return err
		}
	}
	return nil
}

// keyMethods loads the private keys cfg uses and checks that the agent, when
// asked for, has a socket; it opens no connection.
func keyMethods(cfg Config) (methods []ssh.AuthMethod, err error) {
	if cfg.Agent && os.Getenv("SSH_AUTH_SOCK") == "" {
		return nil, fmt.Errorf("host %s: agent: true but SSH_AUTH_SOCK is not set", cfg.Host)
	}
	if cfg.PrivateKey != "" {
		path, err := expandHome(cfg.PrivateKey)
		if err != nil {
			return nil, err
		}
		a, err := keyAuth(cfg, path)
		if err != nil {
			return nil, err
		}
		return a, nil
	}
	if cfg.Agent {
		return nil, nil
	}
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		path, err := expandHome("~/.ssh/" + name)
		if err != nil {
			break
		}
		if _, err := os.Stat(path); err != nil || keyPermissions(path) != nil {
			continue // OpenSSH, too, ignores a default key others can read
		}
		if a, err := parseKey(path, cfg.Passphrase); err == nil {
			methods = append(methods, a...)
		}
	}
	if len(methods) == 0 {
		return nil, fmt.Errorf("host %s: no credentials: set private_key or agent: true (no usable ~/.ssh/id_ed25519, id_ecdsa or id_rsa)", cfg.Host)
	}
	return methods, nil
}

// keyPermissions refuses a private key file its owner lets others read, with
// OpenSSH's own words (sshkey_perm_ok): such a key is no longer private.
func keyPermissions(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) == os.Getuid() && st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("unprotected private key file: permissions %04o for '%s' are too open; it is required that your private key files are NOT accessible by others (chmod 600 %s)",
			st.Mode().Perm(), path, path)
	}
	return nil
}

func keyAuth(cfg Config, path string) (goph.Auth, error) {
	if err := keyPermissions(path); err != nil {
		return nil, fmt.Errorf("host %s: private_key %s: %w", cfg.Host, path, err)
	}
	a, err := parseKey(path, "")
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		if err != nil {
			return nil, fmt.Errorf("host %s: private_key %s: %w", cfg.Host, path, err)
		}
		return a, nil
	}
	if cfg.Passphrase == "" {
		how := "set passphrase_env to the name of an environment variable holding it"
		if cfg.PassphraseEnv != "" {
			how = "passphrase_env names $" + cfg.PassphraseEnv + ", which is empty"
		}
		return nil, fmt.Errorf("host %s: private_key %s is encrypted: %w (%s)", cfg.Host, path, ErrKeyPassphrase, how)
	}
	a, err = parseKey(path, cfg.Passphrase)
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, fmt.Errorf("host %s: private_key %s: %w: the passphrase is wrong", cfg.Host, path, ErrKeyPassphrase)
	}
	if err != nil {
		return nil, fmt.Errorf("host %s: private_key %s: %w", cfg.Host, path, err)
	}
	return a, nil
}
