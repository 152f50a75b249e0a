package cli_test

import (
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing"

	shipped "github.com/troupe/troupe"
	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/runner"
	"github.com/troupe/troupe/internal/step"
)

// Every shipped plan, from every step id as --start-at, against the example
// inventory: the run is either accepted up to the first connection (the
// start point checked, every target and peer named as the run names them)
// or refused with the clear message — never a raw template error.
func TestEveryShippedPlanFromEveryStartAt(t *testing.T) {
	inv, err := inventory.Load("../../inventory/site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l := &plan.Loader{FS: shipped.Content, Actions: step.Registry{}, Funcs: render.Funcs()}
	files, _ := fs.Glob(shipped.Content, "plans/*.yaml")
	// values for the required params, valid for their types
	sample := map[string]string{"certname": "web01.example.com", "archive": "/var/backups/ca.tar.gz", "confirm": "AA:BB", "state": "drain"}
	accepted, refused := map[string]int{}, map[string]int{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".yaml")
		p, err := l.Load(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		given := map[string]string{}
		for _, pr := range p.Params {
			if pr.Required {
				v, ok := sample[pr.Name]
				if !ok {
					t.Fatalf("%s: no sample value for required param %q", name, pr.Name)
				}
				given[pr.Name] = v
			}
		}
		params, err := p.BindParams(given)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var ids []string
		p.Walk(func(s *plan.Step, _ int) error { ids = append(ids, s.ID); return nil })
		for _, id := range ids {
			_, err := runner.FindPeers(runner.Options{Plan: p, Inventory: inv, Params: params, StartAt: id, Flavor: flavor})
			switch {
			case err == nil:
				accepted[name]++
			case strings.Contains(err.Error(), "so it is skipped and its result is not known: start at or before") &&
				!strings.Contains(err.Error(), "map has no entry") && !strings.Contains(err.Error(), "executing"):
				refused[name]++
			default:
				t.Errorf("%s --start-at %s: neither accepted nor clearly refused:\n%v", name, id, err)
			}
		}
		if accepted[name] == 0 {
			t.Errorf("%s: no start point accepted (not even its first step)", name)
		}
	}
	if len(accepted) < 10 {
		t.Fatalf("only %d plans checked: %v", len(accepted), accepted)
	}
	t.Logf("start points accepted %v, refused %v", accepted, refused)

	// the case that failed at ca/backup: revoke's reissue reads nothing
	// the CA steps registered; its CA steps past the lookup are refused
	p, err := l.Load("revoke")
	if err != nil {
		t.Fatal(err)
	}
	params, err := p.BindParams(map[string]string{"certname": "web01.example.com", "reissue": "true"})
	if err != nil {
		t.Fatal(err)
	}
	for id, ok := range map[string]bool{"reissue": true, "crl": true, "ca/clean": false, "ca/backup": false} {
		_, err := runner.FindPeers(runner.Options{Plan: p, Inventory: inv, Params: params, StartAt: id, Flavor: flavor})
		if (err == nil) != ok {
			t.Errorf("revoke --start-at %s: accepted=%v, want %v (%v)", id, err == nil, ok, err)
		}
	}
}

func flavor(h *inventory.Host) (*puppet.Flavor, error) {
	name, _ := h.Vars["flavor"].(string)
	return puppet.Lookup(name)
}

// revoke's params are what they say, refused with exit 2 before anything
// connects: -p takes one value (no ';' splitting: kong's default for
// maps), a certname is never a group (reissue=true targets exactly the host
// of that name), a serial is hex, not a pattern. The last case, a good
// invocation, gets past all three to the credentials check.
func TestRevokeParamsRefusedBeforeConnecting(t *testing.T) {
	inv, err := filepath.Abs("../../inventory/site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // no plans/ here: the shipped revoke; no key in HOME
	env := []string{"HOME=" + dir, "SSH_AUTH_SOCK="}
	base := []string{"--state-dir", filepath.Join(dir, "state"), "run", "revoke", "-i", inv}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-p", "certname=web01.example.com;reissue=true"}, `"web01.example.com;reissue=true" is not a certname`},
		{[]string{"-p", "certname=agents", "-p", "reissue=true"}, `targets {host: "agents"}: no host of that name`},
		{[]string{"-p", "certname=web01.example.com", "-p", "serial=.*"}, `".*" is not a certificate serial`},
		{[]string{"-p", "certname=-x"}, `starts with '-'`},
		{[]string{"-p", "certname=web01.example.com", "-p", "reissue=true", "--start-at", "ca/clean"}, `start at or before ca/find`},
		{[]string{"-p", "certname=web01.example.com", "-p", "reissue=true", "--start-at", "reissue"}, "id_ed25519"},
	} {
		r := troupe(t, env, append(append([]string{}, base...), tc.args...)...)
		out := r.stdout + r.stderr
		if r.code != 2 || !strings.Contains(out, tc.want) || strings.Contains(out, "map has no entry") {
			t.Errorf("%v: exit %d (want 2), want %q in:\n%s", tc.args, r.code, tc.want, out)
		}
	}
}
