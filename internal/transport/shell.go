package transport

import (
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Quote single-quotes s for a POSIX shell; each embedded quote is closed,
// escaped with a backslash and reopened.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// groupWrap makes command killable as a whole: it runs in a background
// subshell (stdin passed through explicitly, since a non-interactive shell
// would give it /dev/null) and a TERM or HUP to the wrapping shell is passed
// on to its whole process group, so `sh -c 'cd /x && long-job'` does not leave
// long-job running when the step is cancelled. The exit status is command's.
// The wrapper writes its pid to pidfile (if not ""), so a second session can
// signal it: sshd ignores "signal" requests on root logins (no privilege
// separation there).
func groupWrap(command, pidfile string) string {
	// pidfile is ours (/tmp/.troupe-HEX.pid): no quoting needed.
	rm, write := "", ""
	if pidfile != "" {
		rm = "rm -f " + pidfile + "; "
		write = "{ echo $$ > " + pidfile + "; } 2>/dev/null\n"
	}
	return "trap \"trap - TERM HUP; " + rm + "kill -TERM 0 2>/dev/null; exit 143\" TERM HUP\n" + write +
		"exec 3<&0\n{\n" + command + "\n} <&3 3<&- &\nwait $!\nrc=$?\n" + rm + "exit $rc"
}

func newPidfile() string { return "/tmp/.troupe-" + randomHex() + ".pid" }

// killLine signals the wrappers whose pids are in pidfiles, waiting up to 2s
// for files that do not exist yet (commands that have not started).
func killLine(pidfiles []string) string {
	return "set -- " + strings.Join(pidfiles, " ") + "\n" +
		"i=0\nwhile [ $# -gt 0 ] && [ $i -lt 10 ]; do\n" +
		"  left=\n  for f do if [ -s \"$f\" ]; then kill -TERM \"$(cat \"$f\")\" 2>/dev/null; else left=\"$left $f\"; fi; done\n" +
		"  set -- $left\n  [ $# -gt 0 ] && sleep 0.2\n  i=$((i+1))\ndone\nexit 0"
}

// shellLine builds the one command string sent to the host. sudo wraps it in
// `sudo -n`; with a sudo password the password is expected as the first line
// of stdin: when sudo needs no password (NOPASSWD or cached credentials) that
// line is read and dropped by the outer shell so it can never reach the
// command's stdin; otherwise `sudo -S -p ”` reads it. The password never
// appears in the command line.
func shellLine(command, pidfile string, sudo, password bool) string {
	inner := Quote(groupWrap(command, pidfile))
	switch {
	case !sudo:
		return "sh -c " + inner
	case !password:
		return "sudo -n -- sh -c " + inner
	default:
		outer := "if sudo -n true 2>/dev/null; then IFS= read -r _ || :; exec sudo -n -- sh -c " + inner +
			"; else exec sudo -S -p '' -- sh -c " + inner + "; fi"
		return "sh -c " + Quote(outer)
	}
}

// octalMode renders m (permission and setuid/setgid/sticky bits) for chmod/install.
func octalMode(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}

func fileMode(f File) fs.FileMode {
	if f.Mode == 0 {
		return 0o644
	}
	return f.Mode
}

// notExistMarker is printed by the download command when the file is missing,
// so the sudo path can report fs.ErrNotExist independent of the host's locale.
const notExistMarker = "troupe: No such file or directory"

// catLine prints path, or notExistMarker and exit 44 when it does not exist.
func catLine(path string) string {
	q := Quote(path)
	return "if [ ! -e " + q + " ]; then echo '" + notExistMarker + ": '" + q + " >&2; exit 44; fi; exec cat -- " + q
}

func isNotExistResult(r Result) bool {
	return r.ExitCode == 44 && strings.Contains(r.Stderr, notExistMarker) ||
		r.ExitCode != 0 && strings.Contains(r.Stderr, "No such file or directory")
}

// hide rewrites a Hidden command so its text travels on stdin: the command
// line becomes `eval "$(head -c N)"` and the text leads stdin, before the
// command's own input. head -c reads exactly N bytes, leaving the rest of
// stdin to the command.
func hide(c Cmd) Cmd {
	if !c.Hidden {
		return c
	}
	in := []io.Reader{strings.NewReader(c.Command)}
	if c.Stdin != nil {
		in = append(in, c.Stdin)
	}
	c.Command, c.Stdin, c.Hidden = fmt.Sprintf(`eval "$(head -c %d)"`, len(c.Command)), io.MultiReader(in...), false
	return c
}
