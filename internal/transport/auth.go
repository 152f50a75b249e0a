package transport

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

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
	if cfg.PrivateKey != "" {
		path, err := expandHome(cfg.PrivateKey)
		if err != nil {
			return nil, closeAuth, err
		}
		a, err := keyAuth(cfg, path)
		if err != nil {
			return nil, closeAuth, err
		}
		methods = append(methods, a...)
	}
	if cfg.Agent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, closeAuth, fmt.Errorf("host %s: agent: true but SSH_AUTH_SOCK is not set", cfg.Host)
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, closeAuth, fmt.Errorf("host %s: ssh agent: %w", cfg.Host, err)
		}
		closeAuth = func() { conn.Close() }
		methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	if cfg.PrivateKey == "" && !cfg.Agent {
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			path, err := expandHome("~/.ssh/" + name)
			if err != nil {
				break
			}
			if _, err := os.Stat(path); err != nil {
				continue
			}
			if a, err := goph.Key(path, cfg.Passphrase); err == nil {
				methods = append(methods, a...)
			}
		}
		if len(methods) == 0 {
			return nil, closeAuth, fmt.Errorf("host %s: no credentials: set private_key or agent: true", cfg.Host)
		}
	}
	return methods, closeAuth, nil
}

func keyAuth(cfg Config, path string) (goph.Auth, error) {
	a, err := goph.Key(path, "")
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
	a, err = goph.Key(path, cfg.Passphrase)
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, fmt.Errorf("host %s: private_key %s: %w: the passphrase is wrong", cfg.Host, path, ErrKeyPassphrase)
	}
	if err != nil {
		return nil, fmt.Errorf("host %s: private_key %s: %w", cfg.Host, path, err)
	}
	return a, nil
}
