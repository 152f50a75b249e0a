package step

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/render"
)

// PuppetCode deploys the control repository with r10k on this host when a
// branch's commit differs from what is deployed, and reports the deployed
// commit of every environment (registered data: environments → commit), so
// drift between compilers is visible. The environment-cache flush that must
// follow a deploy (OpenVoxProject/openvox-docs docs/_openvox-server_8x/
// admin-api/v1/environment-cache.markdown) is left to the plan, which runs it
// only when this step changed something.
type PuppetCode struct {
	Remote  string `yaml:"remote"`  // the control repository, as in r10k.yaml
	Basedir string `yaml:"basedir"` // the environments directory r10k deploys into
	Config  string `yaml:"config"`  // r10k.yaml; default .flavor.paths.r10k_config
	R10k    string `yaml:"r10k"`    // the r10k binary; default .flavor.r10k.bin
	Force   bool   `yaml:"force"`   // deploy even when every commit matches (Puppetfile-only changes)
	// Environment restricts the deploy to one environment (a webhook's
	// pushed branch), so other branches are neither compared nor redeployed;
	// "" deploys every environment.
	Environment string `yaml:"environment"`
}

func (p *PuppetCode) Title() string { return "Deploy the control repository with r10k" }

func (p *PuppetCode) Validate() error {
	if p.Remote == "" || p.Basedir == "" {
		return errors.New("remote and basedir are required")
	}
	return nil
}

func (p *PuppetCode) Run(ctx context.Context, x *Exec) (Result, error) {
	var remote, basedir, config, bin, env string
	for _, f := range []struct {
		dst  *string
		src  string
		dflt string
	}{{&remote, p.Remote, ""}, {&basedir, p.Basedir, ""},
		{&config, p.Config, "{{ .flavor.paths.r10k_config }}"}, {&bin, p.R10k, "{{ .flavor.r10k.bin }}"},
		{&env, p.Environment, ""}} {
		v, err := x.Render(dflt(f.src, f.dflt))
		if err != nil {
			return Result{}, err
		}
		*f.dst = v
	}
	want, err := remoteHeads(ctx, x, remote)
	if err != nil {
		return Result{}, err
	}
	have, err := deployed(ctx, x, basedir)
	if err != nil {
		return Result{}, err
	}
	if env != "" {
		if _, ok := want[env]; !ok {
			return Result{}, fmt.Errorf("environment %q: no such branch on %s", env, remote)
		}
		want, have = only(want, env), only(have, env)
	}
	if !p.Force && sameCommits(have, want) {
		return Result{Msg: describeCommits(have), Data: codeData(have)}, nil
	}
	cmd := render.ShellQuote(bin) + " deploy environment "
	if env != "" {
		cmd += render.ShellQuote(env) + " "
	}
	cmd += "--config " + render.ShellQuote(config) + " --modules --verbose info"
	if x.Noop {
		x.Emit(line("would deploy: %s (deployed: %s)", describeCommits(want), describeCommits(have)))
	}
	if _, err := x.MustChange(ctx, cmd, ""); err != nil {
		return Result{}, fmt.Errorf("r10k: %w", err)
	}
	if x.Noop {
		return Result{Changed: true, Msg: "would deploy " + describeCommits(want), Data: codeData(have)}, nil
	}
	have, err = deployed(ctx, x, basedir)
	if err != nil {
		return Result{}, err
	}
	if env != "" {
		have = only(have, env)
	}
	if !sameCommits(have, want) {
		return Result{}, fmt.Errorf("after r10k: deployed %s, remote has %s", describeCommits(have), describeCommits(want))
	}
	return Result{Changed: true, Msg: describeCommits(have), Data: codeData(have)}, nil
}

// remoteHeads maps environment name → commit for every branch of the remote.
func remoteHeads(ctx context.Context, x *Exec, remote string) (map[string]string, error) {
	res, err := x.MustProbe(ctx, "git ls-remote --heads "+render.ShellQuote(remote))
	if err != nil {
		return nil, fmt.Errorf("git ls-remote %s: %w", remote, err)
	}
	out := puppet.ParseHeads(res.Stdout)
	if len(out) == 0 {
		return nil, fmt.Errorf("git ls-remote %s: no branches", remote)
	}
	return out, nil
}

// deployed maps environment name → the commit r10k recorded in its
// .r10k-deploy.json ("" when the directory has none).
func deployed(ctx context.Context, x *Exec, basedir string) (map[string]string, error) {
	res, err := x.MustProbe(ctx, "ls -1 "+render.ShellQuote(basedir)+" 2>/dev/null; true")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, env := range strings.Fields(res.Stdout) {
		b, err := x.Conn.Download(ctx, path.Join(basedir, env, ".r10k-deploy.json"), x.Sudo)
		if err != nil {
			out[env] = ""
			continue
		}
		var d struct {
			Signature string `json:"signature"`
		}
		_ = json.Unmarshal(b, &d)
		out[env] = d.Signature
	}
	return out, nil
}

// only keeps env's entry of m (none when m lacks it).
func only(m map[string]string, env string) map[string]string {
	out := map[string]string{}
	if sha, ok := m[env]; ok {
		out[env] = sha
	}
	return out
}

func sameCommits(have, want map[string]string) bool {
	if len(have) != len(want) {
		return false
	}
	for env, sha := range want {
		if have[env] != sha {
			return false
		}
	}
	return true
}

func describeCommits(m map[string]string) string {
	if len(m) == 0 {
		return "nothing"
	}
	var parts []string
	for _, env := range sortedKeys(m) {
		sha := m[env]
		if len(sha) > 12 {
			sha = sha[:12]
		}
		if sha == "" {
			sha = "?"
		}
		parts = append(parts, env+"@"+sha)
	}
	return strings.Join(parts, " ")
}

func codeData(m map[string]string) map[string]any {
	envs := map[string]any{}
	for k, v := range m {
		envs[k] = v
	}
	return map[string]any{"environments": envs}
}
