package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statusReadOnly: `troupe status` changes nothing on a CA, a compiler and
// the LB. The lab's hosts are processes on this machine, so each host's
// sshd and everything it forks is traced from here with strace while
// status reads the site. The processes of troupe's login (its shell and
// every descendant: the probe) wrote no file and ran only the programs the
// probe is made of. The controls: the trace saw the probe start on each
// host, and saw it read the package database (dpkg-query); a trace that
// saw nothing would pass every other check.
func statusReadOnly(ctx context.Context, t *testing.T, s *site) {
	hosts := []string{"ca", "compile1", "lb"}
	type tracer struct {
		host string
		cmd  *exec.Cmd
		out  string
	}
	var tracers []*tracer
	for _, h := range hosts {
		pid, err := s.l.SSHDPID(h)
		if err != nil {
			t.Fatal(err)
		}
		tr := &tracer{host: h, out: filepath.Join(t.TempDir(), h+".strace")}
		// --pidns-translation: a clone's result is the child's PID in the
		// host's namespace, where its calls are reported, too
		tr.cmd = exec.Command("strace", "-f", "-z", "--pidns-translation", "-s", "256", "-o", tr.out, "-p", strconv.Itoa(pid),
			"-e", "trace=process,openat,mkdir,mkdirat,unlink,unlinkat,rename,renameat,renameat2,rmdir,truncate,ftruncate,link,linkat,symlink,symlinkat,chmod,fchmodat,chown,fchownat,utimensat")
		stderr, _ := tr.cmd.StderrPipe()
		if err := tr.cmd.Start(); err != nil {
			t.Fatalf("strace (scripts/install-test-deps.sh installs it): %v", err)
		}
		// strace says "Process N attached" once it traces: only then may
		// status start.
		attached := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(stderr)
			ok := false
			for sc.Scan() {
				if !ok && strings.Contains(sc.Text(), "attached") {
					ok = true
					attached <- true
				}
			}
			if !ok {
				attached <- false
			}
		}()
		select {
		case ok := <-attached:
			if !ok {
				t.Fatalf("strace did not attach to %s's sshd (%d)", h, pid)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("strace did not attach to %s's sshd (%d) within 10 s", h, pid)
		}
		tracers = append(tracers, tr)
	}
	_, code := s.status(ctx)
	for _, tr := range tracers {
		tr.cmd.Process.Signal(syscall.SIGINT)
		tr.cmd.Wait()
	}
	if code != 0 {
		t.Errorf("status of the healthy site: exit %d", code)
	}
	for _, tr := range tracers {
		b, err := os.ReadFile(tr.out)
		if err != nil {
			t.Fatal(err)
		}
		p := probeCalls(string(b))
		if p.root == 0 {
			t.Errorf("%s: the trace shows no login shell running a command: status's probe was not seen\n%.3000s", tr.host, b)
			continue
		}
		if !p.readDpkg {
			t.Errorf("%s: the probe did not read /var/lib/dpkg/status in the trace: it was not followed", tr.host)
		}
		for _, w := range p.writes {
			t.Errorf("%s: status's probe wrote: %s", tr.host, w)
		}
		var unknown []string
		for _, prog := range p.programs {
			if !slices.Contains(probePrograms, prog) {
				unknown = append(unknown, prog)
			}
		}
		if len(unknown) > 0 {
			t.Errorf("%s: status's probe ran programs it is not made of: %v (all: %v)", tr.host, unknown, p.programs)
		}
		t.Logf("READ-ONLY %s: the probe ran %v; 0 writes", tr.host, p.programs)
		record(t, "status probe: writes on "+tr.host, float64(len(p.writes)), "count")
	}
}

// probePrograms is every program status's probe (internal/status's script)
// runs on a host, and the shells and sudo that start it.
var probePrograms = []string{"bash", "sh", "dash", "sudo", "timeout", "curl", "openssl", "socat", "git", "git-remote-http", "git-remote-https", "puppet", "ruby", "r10k",
	"systemctl", "dpkg-query", "cat", "sed", "head", "tr", "ls", "stat",
	"ip"} // ip -o -4 addr show: which load balancer holds lb_vip

type probeTrace struct {
	root     int      // the login shell that ran troupe's command
	writes   []string // calls of the probe's processes that changed a file
	programs []string // what the probe's processes executed (base names, sorted, once each)
	readDpkg bool
}

var (
	straceLine = regexp.MustCompile(`^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)(?: /\* (\d+) in strace's PID NS \*/)?`)
	execArgs   = regexp.MustCompile(`^"([^"]*)", \["([^"]*)"(?:, "([^"]*)")?`)
	fileWrite  = regexp.MustCompile(`O_(WRONLY|RDWR|CREAT|TRUNC)`)
	writeCalls = map[string]bool{"mkdir": true, "mkdirat": true, "unlink": true, "unlinkat": true, "rename": true, "renameat": true,
		"renameat2": true, "rmdir": true, "truncate": true, "ftruncate": true, "link": true, "linkat": true, "symlink": true,
		"symlinkat": true, "chmod": true, "fchmodat": true, "chown": true, "fchownat": true, "utimensat": true}
)

// probeCalls reads an strace -f -z trace of an sshd: the first shell that
// runs troupe's status command (argv[1] -c, the probe's marker in it) is
// the probe's root, and every process it or its descendants cloned belongs
// to the probe.
func probeCalls(trace string) probeTrace {
	var p probeTrace
	in := map[int]bool{}
	progs := map[string]bool{}
	for _, l := range strings.Split(trace, "\n") {
		m := straceLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		call, args, ret := m[2], m[3], m[4]
		if m[5] != "" {
			ret = m[5] // a PID, as the host sees it
		}
		switch {
		case call == "execve" && p.root == 0:
			// the login shell running troupe's command, which carries the
			// probe's section marker (not PAM's motd shell, which sshd
			// starts for every login)
			if e := execArgs.FindStringSubmatch(args); e != nil && e[3] == "-c" && strings.Contains(args, "@@troupe-status@@") {
				p.root, in[pid] = pid, true
				progs[filepath.Base(e[1])] = true
			}
		case !in[pid]:
		case call == "clone" || call == "clone3" || call == "fork" || call == "vfork":
			if child, err := strconv.Atoi(ret); err == nil && child > 0 {
				in[child] = true
			}
		case call == "execve":
			if e := execArgs.FindStringSubmatch(args); e != nil {
				progs[filepath.Base(e[1])] = true
			}
		case call == "openat":
			if strings.Contains(args, `"/var/lib/dpkg/status"`) {
				p.readDpkg = true
			}
			if fileWrite.MatchString(args) && !strings.Contains(args, `"/dev/null"`) && !strings.Contains(args, `"/dev/tty"`) {
				p.writes = append(p.writes, l)
			}
		case writeCalls[call]:
			p.writes = append(p.writes, l)
		}
	}
	for prog := range progs {
		p.programs = append(p.programs, prog)
	}
	sort.Strings(p.programs)
	return p
}
