package runner

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/step"
)

// testActions are the real actions plus peer_cmd, an action that reaches
// other hosts as lb_server does, without HAProxy: it names them
// (step.PeerUser) and runs a command on each through Exec.Peer.
type testActions struct{ step.Registry }

func (a testActions) Kinds() []string { return append(a.Registry.Kinds(), "peer_cmd") }

func (a testActions) Decode(kind string, node ast.Node) (any, error) {
	if kind != "peer_cmd" {
		return a.Registry.Decode(kind, node)
	}
	p := &peerCmd{}
	return p, yaml.NodeToValue(node, p, yaml.Strict())
}

type peerCmd struct {
	Hosts string `yaml:"hosts"` // comma-separated; a template
	Cmd   string `yaml:"cmd"`
}

func (p *peerCmd) Peers(sc step.Scope) ([]string, error) {
	s, err := sc.Render(p.Hosts)
	if err != nil {
		return nil, err
	}
	return strings.Split(s, ","), nil
}

// Run answers "PEER=OUTPUT ..." for its peers, in order.
func (p *peerCmd) Run(ctx context.Context, x *step.Exec) (step.Result, error) {
	names, err := p.Peers(x.Scope())
	if err != nil {
		return step.Result{}, err
	}
	var out []string
	for _, n := range names {
		px, err := x.Peer(ctx, n)
		if err != nil {
			return step.Result{}, err
		}
		res, err := px.MustChange(ctx, p.Cmd, "")
		if err != nil {
			return step.Result{}, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, n+"="+strings.TrimSpace(res.Stdout))
	}
	return step.Result{Changed: true, Msg: strings.Join(out, " ")}, nil
}

// The step's sudo reaches its peers, against Debian's real sshd: a peer
// whose login (troupe-test) does not use sudo runs the step's commands as
// root when the step says sudo: true, and as itself otherwise.
func TestStepSudoReachesPeersOverOpenSSH(t *testing.T) {
	o := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{})
	u, err := user.Lookup(sshtest.TestUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // troupe-test reaches its lock directory below
	peerLocks := filepath.Join(dir, "peer-locks")
	os.Mkdir(peerLocks, 0o700)
	os.Chown(peerLocks, uid, -1)
	content := filepath.Join(dir, "content")
	os.MkdirAll(filepath.Join(content, "plans"), 0o755)
	os.MkdirAll(filepath.Join(content, "roles"), 0o755)
	os.WriteFile(filepath.Join(content, "plans", "p.yaml"), []byte(`name: p
steps:
  - {id: as-root, targets: t, sudo: true, peer_cmd: {hosts: p, cmd: id -u}}
  - {id: as-login, targets: t, peer_cmd: {hosts: p, cmd: id -u}}
`), 0o644)
	l := &plan.Loader{FS: os.DirFS(content), Actions: testActions{}, Funcs: render.Funcs()}
	pl, err := l.Load("p")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.LoadBytes(filepath.Join(dir, "inv.yaml"), []byte(fmt.Sprintf(`version: 1
config: {ssh: {port: %d, private_key: %s, known_hosts: %s}}
targets:
  - {name: t, address: 127.0.0.1, config: {ssh: {user: root}}, vars: {troupe_lock: %s}}
  - {name: p, address: 127.0.0.1, config: {ssh: {user: %s, sudo: false}}, vars: {troupe_lock: %s}}
`, o.Port, o.KeyFile, o.KnownHosts, filepath.Join(dir, "troupe.lock"), sshtest.TestUser, filepath.Join(peerLocks, "troupe.lock"))))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Run(ctx, Options{Plan: pl, Inventory: inv, Params: map[string]any{}, StateDir: filepath.Join(dir, "state"),
		Reporter: rec, Redactor: &secret.Redactor{}}); err != nil {
		t.Fatalf("run: %v", err)
	}
	got := rec.results()
	if got["as-root t"] != "changed p=0" || got["as-login t"] != "changed p="+u.Uid {
		t.Errorf("as-root %q (want p=0), as-login %q (want p=%s)", got["as-root t"], got["as-login t"], u.Uid)
	}
}
