package transport_test

import (
	"testing"

	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/transport"
)

// MaxOutput keeps the first bytes of each stream and drops the rest, over
// SSH and locally; without it everything is kept (the positive control).
func TestMaxOutputBoundsWhatIsKept(t *testing.T) {
	const max = 64 << 10
	cmd := "head -c 3000000 /dev/zero | tr '\\0' o; head -c 2000000 /dev/zero | tr '\\0' e >&2; exit 3"
	for name, c := range map[string]transport.Conn{"ssh": dial(t, sshtest.StartServer(t).Config), "local": transport.Local()} {
		res := run(t, c, transport.Cmd{Command: cmd, MaxOutput: max})
		if len(res.Stdout) != max || len(res.Stderr) != max || !res.Truncated || res.ExitCode != 3 {
			t.Errorf("%s: kept %d+%d bytes, truncated %v, exit %d; want %d each, true, 3",
				name, len(res.Stdout), len(res.Stderr), res.Truncated, res.ExitCode, max)
		}
		if res.Stdout[max-1] != 'o' || res.Stderr[0] != 'e' {
			t.Errorf("%s: not the streams' first bytes", name)
		}
		res = run(t, c, transport.Cmd{Command: cmd})
		if len(res.Stdout) != 3000000 || len(res.Stderr) != 2000000 || res.Truncated {
			t.Errorf("%s without MaxOutput: kept %d+%d bytes, truncated %v", name, len(res.Stdout), len(res.Stderr), res.Truncated)
		}
		res = run(t, c, transport.Cmd{Command: "printf 12345", MaxOutput: 5})
		if res.Stdout != "12345" || res.Truncated {
			t.Errorf("%s: exactly MaxOutput bytes: %+v", name, res)
		}
	}
}
