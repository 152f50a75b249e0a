package step

import (
	"context"
	"errors"
	"fmt"
	"github.com/troupe/troupe/internal/report"
	"maps"
	"slices"
	"strings"

	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/render"
)

// PuppetConfig reads settings with `puppet config print` on the host, so
// roles use the host's own paths (ssldir, hostcert, cadir, ...) instead of a
// layout's defaults (Debian's layout is not the vendor's: the flavor table in
// docs/guide.md). The values land in the registered result's data: register: pc →
// .registered.pc.data.hostcert.
type PuppetConfig struct {
	Keys     []string `yaml:"keys"`
	Section  string   `yaml:"section"`  // default main
	Certname string   `yaml:"certname"` // paths derived for this certname; default the host's inventory name
}

func (p *PuppetConfig) ReadOnly() bool { return true }
func (p *PuppetConfig) Title() string  { return "Read puppet settings " + strings.Join(p.Keys, " ") }

func (p *PuppetConfig) Validate() error {
	if len(p.Keys) == 0 {
		return errors.New("keys: at least one setting is required")
	}
	return nil
}

func (p *PuppetConfig) Run(ctx context.Context, x *Exec) (Result, error) {
	certname, err := x.Render(p.Certname)
	if err != nil {
		return Result{}, err
	}
	if certname == "" { // troupe names a host's certificate by its inventory name
		certname = x.Host.Name
	}
	section := p.Section
	if section == "" {
		section = "main"
	}
	vals, err := puppetSettings(ctx, x, section, certname, p.Keys...)
	if err != nil {
		return Result{}, err
	}
	data := map[string]any{}
	var msg []string
	for _, k := range p.Keys {
		data[k] = vals[k]
		msg = append(msg, k+"="+vals[k])
	}
	return Result{Data: data, Msg: strings.Join(msg, " ")}, nil
}

// puppetSettings runs one `puppet config print` for several keys. With more
// than one key Puppet prints "key = value" lines; with one, the bare value.
func puppetSettings(ctx context.Context, x *Exec, section, certname string, keys ...string) (map[string]string, error) {
	cmd := dflt(x.bins().Puppet, "puppet") + " config print " + strings.Join(keys, " ") + " --section " + render.ShellQuote(section)
	if certname != "" {
		cmd += " --certname " + render.ShellQuote(certname)
	}
	res, err := x.MustProbe(ctx, cmd)
	var ee *ExitError
	if errors.As(err, &ee) && ee.Result.ExitCode == 127 && x.Unapplied {
		// --noop on a host Puppet is not installed on yet (the install
		// before it was only shown): the flavor's defaults stand in, said so.
		if out, ok := flavorSettings(x.Flavor, certname, keys); ok {
			x.Emit(report.Event{Kind: report.HostLine, Stream: "stdout",
				Text: "puppet is not installed yet (--noop): the flavor's default paths stand in for puppet config print"})
			return out, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("puppet config print: %w", err)
	}
	out := map[string]string{}
	if len(keys) == 1 {
		out[keys[0]] = strings.TrimSpace(res.Stdout)
		return out, nil
	}
	for _, l := range strings.Split(res.Stdout, "\n") {
		k, v, ok := strings.Cut(l, " = ")
		if ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("puppet config print: no value for %s in %q", k, lastLine(res.Stdout))
		}
	}
	return out, nil
}

// bins are the host's flavor binaries, absolute paths (vendor packages keep
// theirs in /opt/puppetlabs/bin, which non-login SSH and sudo's secure_path
// lack: see puppet.Binaries); none without a flavor, and callers fall back
// to the bare name.
func (x *Exec) bins() puppet.Binaries {
	if x.Flavor == nil {
		return puppet.Binaries{}
	}
	return x.Flavor.Bin
}

// sortedKeys lists a map's keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// flavorSettings are Puppet's settings for keys as the flavor installs
// them (a certname's files under the ssldir, as Puppet names them), a
// placeholder for the others; false without a flavor.
func flavorSettings(f *puppet.Flavor, certname string, keys []string) (map[string]string, bool) {
	if f == nil {
		return nil, false
	}
	p, ssl := f.Paths, f.Paths.Ssldir
	known := map[string]string{
		"confdir": p.Confdir, "codedir": p.Codedir, "ssldir": ssl, "cadir": p.Cadir,
		"certname": certname, "route_file": p.Confdir + "/routes.yaml",
		"hostcert": ssl + "/certs/" + certname + ".pem", "hostprivkey": ssl + "/private_keys/" + certname + ".pem",
		"hostpubkey": ssl + "/public_keys/" + certname + ".pem", "hostcsr": ssl + "/certificate_requests/" + certname + ".pem",
		"localcacert": ssl + "/certs/ca.pem", "hostcrl": ssl + "/crl.pem",
	}
	out := map[string]string{}
	for _, k := range keys {
		v, ok := known[k]
		if !ok || v == "" {
			v = "<" + k + ": known once puppet is installed>" // shown, never used: nothing is changed under --noop
		}
		out[k] = v
	}
	return out, true
}
