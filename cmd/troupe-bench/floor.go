package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/troupe/troupe/internal/sshtest"
)

// The floor: the least a Go program can do for the benchmark's four steps,
// for troupe to be measured against. One golang.org/x/crypto/ssh connection
// per host, all hosts at once, one session per step (the upload a plain
// SFTP write), and nothing else: no lock, no probes, no temp file and
// rename, no report. It is this same binary, started with -floor.

// floorCmd starts this binary as the floor for hosts.
func (e *benchEnv) floorCmd(dir string, hosts []*host) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	list, err := writeHostList(dir, hosts)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-floor", list)
	cmd.Env = append(os.Environ(), "KEY="+e.f.Key, "KH="+e.f.KnownHosts, "PAYLOAD="+e.payload)
	return cmd, nil
}

// writeHostList writes "PORT SCRATCH" per host into dir/hosts.txt.
func writeHostList(dir string, hosts []*host) (string, error) {
	var b strings.Builder
	for _, h := range hosts {
		fmt.Fprintf(&b, "%d %s\n", h.Port, h.Scratch)
	}
	list := filepath.Join(dir, "hosts.txt")
	return list, os.WriteFile(list, []byte(b.String()), 0o644)
}

// runFloor does the four steps on every host of list (see writeHostList),
// as sshtest.TestUser with the key $KEY, host keys checked against $KH, the
// file $PAYLOAD uploaded.
func runFloor(list string) error {
	key, err := os.ReadFile(os.Getenv("KEY"))
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return err
	}
	hostKeys, err := knownhosts.New(os.Getenv("KH"))
	if err != nil {
		return err
	}
	payload, err := os.ReadFile(os.Getenv("PAYLOAD"))
	if err != nil {
		return err
	}
	cfg := &ssh.ClientConfig{
		User:            sshtest.TestUser,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		// known_hosts pins each server's ed25519 key only
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           time.Minute,
	}
	f, err := os.Open(list)
	if err != nil {
		return err
	}
	defer f.Close()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		port, scratch, _ := strings.Cut(sc.Text(), " ")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := floorHost(cfg, net.JoinHostPort("127.0.0.1", port), scratch, payload); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("port %s: %w", port, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, sc.Err())...)
}

func floorHost(cfg *ssh.ClientConfig, addr, scratch string, payload []byte) error {
	c, err := ssh.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	run := func(cmd string) error {
		s, err := c.NewSession()
		if err != nil {
			return err
		}
		defer s.Close()
		if out, err := s.CombinedOutput(cmd); err != nil {
			return fmt.Errorf("%s: %w: %s", cmd, err, out)
		}
		return nil
	}
	q := strconv.Quote(scratch) // the scratch paths are plain: a double-quoted word is enough
	if err := run("echo hello"); err != nil {
		return err
	}
	if err := run("touch " + q + "/touched"); err != nil {
		return err
	}
	if err := upload(c, scratch+"/payload", payload); err != nil {
		return err
	}
	return run("cd " + q + " && sha256sum payload > payload.sha256")
}

func upload(c *ssh.Client, dest string, content []byte) error {
	sc, err := sftp.NewClient(c)
	if err != nil {
		return err
	}
	defer sc.Close()
	fh, err := sc.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := fh.ReadFrom(bytes.NewReader(content)); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Chmod(0o644); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}
