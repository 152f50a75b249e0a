package sshtest

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// HostTrace is what sshd and everything it forked did on a host while a
// probe ran: the programs started and the calls that change the file
// system.
type HostTrace struct {
	Raw    string   // the whole strace output (successful calls only)
	Execs  []string // the program of every execve, in order
	Writes []string // strace lines that change the file system, not known harmless
}

// traceCalls are the calls traced: execve, and every call that creates,
// changes or removes a file.
const traceCalls = "execve,openat,mkdir,mkdirat,unlink,unlinkat,rename,renameat,renameat2,rmdir,truncate,ftruncate,link,linkat,symlink,symlinkat,chmod,fchmodat,chown,fchownat,utimensat"

// writeCall matches strace lines of calls that change the file system.
var writeCall = regexp.MustCompile(`^(\d+)\s+(openat\(.*O_(WRONLY|RDWR|CREAT).*|(mkdir|mkdirat|unlink|unlinkat|rename|renameat2?|rmdir|truncate|ftruncate|link|linkat|symlink|symlinkat|chmod|fchmodat|chown|fchownat|utimensat)\(.*)$`)

// harmlessWrite are the only writes of a read-only session (strace on
// Debian 12's OpenSSH 9.2 and sudo): /dev/null, and sshd setting its
// children's OOM score.
var harmlessWrite = regexp.MustCompile(`"/dev/null"|"/proc/self/oom_score_adj"`)

var execCall = regexp.MustCompile(`^\d+\s+execve\("([^"]*)"`)

// TraceSSHD proves what probe does on a host: it starts strace (-f) on the
// host's sshd listener (sshdPID), waits until strace says it is attached,
// runs probe, waits until every process sshd forked meanwhile has exited,
// then stops strace and returns what it saw.
//
// run runs a shell command as root on the host and returns its stdout: on
// this machine (exec sh -c), or over a connection opened BEFORE TraceSSHD
// is called, so its own sessions (children of that connection's sshd
// process, not of the listener) stay out of the trace. probe must open its
// own connection (a child of the listener: traced) and close it before
// returning. An error, never an empty trace, when the host cannot trace
// (no strace, no attach within 10 s).
func TraceSSHD(ctx context.Context, run func(ctx context.Context, command string) (string, error), sshdPID int, probe func() error) (*HostTrace, error) {
	out, err := run(ctx, "command -v strace >/dev/null || { echo 'no strace on the host (apt-get install strace)' >&2; exit 127; }; mktemp -d /tmp/troupe-trace.XXXXXX")
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	dir := strings.TrimSpace(out)
	if !strings.HasPrefix(dir, "/tmp/troupe-trace.") {
		return nil, fmt.Errorf("trace: mktemp said %q", out)
	}
	defer run(context.WithoutCancel(ctx), "rm -rf "+dir)
	// setsid and every descriptor redirected: the starting session ends at
	// once while strace goes on
	start := fmt.Sprintf("setsid strace -f -z -e trace=%s -o %s/trace -p %d </dev/null >/dev/null 2>%s/log & echo $! >%s/pid",
		traceCalls, dir, sshdPID, dir, dir)
	if _, err := run(ctx, start); err != nil {
		return nil, fmt.Errorf("trace: start strace: %w", err)
	}
	stop := func() { _, _ = run(context.WithoutCancel(ctx), "kill -INT $(cat "+dir+"/pid) 2>/dev/null") }
	attached := fmt.Sprintf("Process %d attached", sshdPID)
	if err := waitFor(ctx, 10*time.Second, func() (bool, error) {
		log, err := run(ctx, "cat "+dir+"/log; kill -0 $(cat "+dir+"/pid) 2>/dev/null || echo '(strace exited)'")
		if strings.Contains(log, attached) {
			return true, nil
		}
		if strings.Contains(log, "(strace exited)") {
			return false, fmt.Errorf("strace did not attach to sshd %d: %s", sshdPID, strings.TrimSpace(log))
		}
		return false, err
	}); err != nil {
		stop()
		return nil, fmt.Errorf("trace: %w", err)
	}
	probeErr := probe()
	// the sessions' last calls (sshd closing the connection) come after the
	// probe has its answer: wait until every traced child has exited
	var raw string
	waitErr := waitFor(ctx, 10*time.Second, func() (bool, error) {
		var err error
		raw, err = run(ctx, "cat "+dir+"/trace")
		return err == nil && allExited(raw, sshdPID), err
	})
	stop()
	if _, err := run(ctx, "while kill -0 $(cat "+dir+"/pid) 2>/dev/null; do sleep 0.05; done"); err != nil {
		return nil, fmt.Errorf("trace: stop strace: %w", err)
	}
	if raw, err = run(ctx, "cat "+dir+"/trace"); err != nil {
		return nil, fmt.Errorf("trace: read: %w", err)
	}
	tr := parseTrace(raw)
	if probeErr != nil {
		return tr, fmt.Errorf("trace: the probe: %w", probeErr)
	}
	if waitErr != nil {
		return tr, fmt.Errorf("trace: sshd's children %v did not exit: %w", alive(raw, sshdPID), waitErr)
	}
	return tr, nil
}

// allExited: every process in the trace but the listener has exited.
func allExited(raw string, listener int) bool {
	return len(alive(raw, listener)) == 0 && strings.Contains(raw, "+++ exited")
}

// alive are the processes of the trace, but the listener, not seen exit.
func alive(raw string, listener int) []string {
	live := map[string]bool{}
	for _, l := range strings.Split(raw, "\n") {
		pid, rest, ok := strings.Cut(l, " ")
		if _, err := strconv.Atoi(pid); err != nil || !ok || pid == strconv.Itoa(listener) {
			continue // the listener, or the end of an unfinished call: ")  = 3" with -z
		}
		rest = strings.TrimSpace(rest)
		switch {
		case strings.HasPrefix(rest, "+++ exited"), strings.HasPrefix(rest, "+++ killed"):
			live[pid] = false
		default:
			if _, seen := live[pid]; !seen {
				live[pid] = true
			}
		}
	}
	var out []string
	for pid, alive := range live {
		if alive {
			out = append(out, pid)
		}
	}
	return out
}

func parseTrace(raw string) *HostTrace {
	tr := &HostTrace{Raw: raw}
	for _, l := range strings.Split(raw, "\n") {
		if m := execCall.FindStringSubmatch(l); m != nil {
			tr.Execs = append(tr.Execs, m[1])
		}
		if writeCall.MatchString(l) && !harmlessWrite.MatchString(l) {
			tr.Writes = append(tr.Writes, l)
		}
	}
	return tr
}

// waitFor polls cond until it is true or fails, or limit passes.
func waitFor(ctx context.Context, limit time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		switch {
		case err != nil:
			return err
		case ok:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return fmt.Errorf("not within %s", limit)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}
