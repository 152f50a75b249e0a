package sshtest

import (
	"strings"
	"testing"
)

// A trace as strace -f -z writes it: an unfinished call's end line has no
// pid, exits are "+++ exited", writes are told from reads.
func TestParseTrace(t *testing.T) {
	raw := strings.Join([]string{
		`100   --- SIGCHLD {si_signo=SIGCHLD} ---`,
		`200   execve("/usr/sbin/sshd", ["sshd", "-R"], 0x7ffd /* 5 vars */) = 0`,
		`201   execve("/usr/bin/sh", ["sh", "-c", "x"], 0x7ffd /* 5 vars */) = 0`,
		`201   openat(AT_FDCWD, "/var/lib/dpkg/status", O_RDONLY <unfinished ...>`,
		`)                                       = 3`,
		`201   openat(AT_FDCWD, "/dev/null", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3`,
		`201   openat(AT_FDCWD, "/etc/evil", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3`,
		`201   unlinkat(AT_FDCWD, "/tmp/x", 0) = 0`,
		`201   +++ exited with 0 +++`,
	}, "\n")
	tr := parseTrace(raw)
	if strings.Join(tr.Execs, " ") != "/usr/sbin/sshd /usr/bin/sh" {
		t.Errorf("execs %v", tr.Execs)
	}
	if len(tr.Writes) != 2 || !strings.Contains(tr.Writes[0], "/etc/evil") || !strings.Contains(tr.Writes[1], "unlinkat") {
		t.Errorf("writes %q", tr.Writes)
	}
	if got := alive(raw, 100); len(got) != 1 || got[0] != "200" {
		t.Errorf("alive = %v, want [200] (the listener 100 left out)", got)
	}
	if allExited(raw, 100) || !allExited(raw+"\n200   +++ exited with 0 +++", 100) {
		t.Error("allExited")
	}
}
