package inventory

import (
	"bytes"
	"fmt"
	goldenfiles "github.com/troupe/troupe/internal/golden"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/diag"
)

const fixtures = "../../fixtures"

func TestMain(m *testing.M) {
	currentUser = func() string { return "tester" }
	os.Exit(m.Run())
}

// golden compares got with fixtures/golden/name (or rewrites it with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfiles.Check(t, filepath.Join(fixtures, "golden", name), got)
}

func loadSite(t *testing.T) *Inventory {
	t.Helper()
	t.Setenv("TROUPE_TEST_DB_PASSWORD", "s3cr3t-db")
	inv, err := Load(filepath.Join(fixtures, "inventory", "site.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func names(hs []*Host) []string {
	out := []string{}
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

func TestPrecedence(t *testing.T) {
	inv := loadSite(t)
	if got, want := names(inv.Hosts), []string{"bastion.example.com", "ca01.example.com", "lb01.example.com",
		"compile01.example.com", "compile02.example.com", "compile03.example.com"}; !reflect.DeepEqual(got, want) {
		t.Errorf("hosts = %v, want %v", got, want)
	}
	var groups []string
	for _, g := range inv.Groups {
		groups = append(groups, g.Name)
	}
	if want := []string{"ca", "lb", "compilers", "canary", "monitored"}; !reflect.DeepEqual(groups, want) {
		t.Errorf("groups = %v, want %v", groups, want)
	}
	if g := inv.Group("compilers"); !reflect.DeepEqual(g.Targets, []string{"compile01.example.com", "compile02.example.com", "compile03.example.com"}) || !reflect.DeepEqual(g.Children, []string{"canary"}) {
		t.Errorf("compilers = %+v", g)
	}
	if g := inv.Group("canary"); g.Parent != "compilers" || !reflect.DeepEqual(g.Targets, []string{"compile01.example.com"}) {
		t.Errorf("canary = %+v", g)
	}

	tests := []struct {
		host   string
		groups []string
		vars   map[string]any
		check  func(t *testing.T, h *Host)
	}{
		{
			host:   "compile01", // by alias
			groups: []string{"compilers", "canary", "monitored"},
			// top 1g < compilers 2g < canary 2500m < monitored 512m < target 3g
			vars: map[string]any{"heap": "3g", "role": "monitored", "canary": true},
			check: func(t *testing.T, h *Host) {
				c := h.SSH
				if c.User != "root" || c.Port != 2022 || c.Address != "10.0.0.11" || c.ConnectTimeout != 30*time.Second ||
					c.HostKeyCheck != "accept-new" || !c.Sudo || c.PrivateKey != "~/.ssh/id_ed25519" || c.Host != h.Name {
					t.Errorf("ssh = %+v", c)
				}
			},
		},
		{
			host:   "compile02.example.com",
			groups: []string{"compilers", "monitored"},
			vars:   map[string]any{"heap": "512m", "role": "monitored"},
			check: func(t *testing.T, h *Host) {
				c := h.SSH
				if c.User != "puppet" || c.Port != 22 || c.Address != h.Name || c.HostKeyCheck != "strict" {
					t.Errorf("ssh = %+v", c)
				}
			},
		},
		{
			host:   "ca01.example.com",
			groups: []string{"ca"},
			vars:   map[string]any{"heap": "1g"},
			check: func(t *testing.T, h *Host) {
				j := h.SSH.Jump
				if h.SSH.JumpSpec != "bastion" || j == nil || j.Host != "bastion.example.com" || j.User != "jump" || j.Port != 22 {
					t.Errorf("jump = %+v", j)
				}
				if h.SSH.User != "admin" || h.SSH.ConnectTimeout != DefaultConnectTimeout {
					t.Errorf("ssh = %+v", h.SSH)
				}
			},
		},
		{
			host:   "lb01.example.com",
			groups: []string{"lb", "monitored"},
			vars:   map[string]any{"heap": "512m", "role": "monitored"},
			check: func(t *testing.T, h *Host) {
				j := h.SSH.Jump
				if j == nil || j.User != "ops" || j.Address != "gw.example.com" || j.Port != 2222 || j.PrivateKey != "~/.ssh/id_ed25519" || j.HostKeyCheck != "strict" {
					t.Errorf("jump = %+v", j)
				}
			},
		},
		{
			host:   "bastion",
			groups: nil,
			vars:   map[string]any{"heap": "1g"},
			check: func(t *testing.T, h *Host) {
				if h.SSH.User != "jump" || h.SSH.Jump != nil {
					t.Errorf("ssh = %+v", h.SSH)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			h := inv.Host(tt.host)
			if h == nil {
				t.Fatalf("no host %q", tt.host)
			}
			if !reflect.DeepEqual(h.Groups, tt.groups) {
				t.Errorf("groups = %v, want %v", h.Groups, tt.groups)
			}
			for k, v := range tt.vars {
				if !reflect.DeepEqual(h.Vars[k], v) {
					t.Errorf("vars[%s] = %#v, want %#v", k, h.Vars[k], v)
				}
			}
			if h.Vars["db_password"] != "s3cr3t-db" || h.Vars["flavor"] != "debian" {
				t.Errorf("top-level vars missing: %v", h.Vars)
			}
			if !reflect.DeepEqual(h.Secrets, []string{"vars.db_password"}) {
				t.Errorf("secrets = %v", h.Secrets)
			}
			tt.check(t, h)
		})
	}
	if !reflect.DeepEqual(inv.Secrets, []string{"vars.db_password"}) {
		t.Errorf("inventory secrets = %v", inv.Secrets)
	}
	if got, want := inv.SecretValues(), []string{"abc123", "hunter2", "s3cr3t-db"}; !reflect.DeepEqual(got, want) {
		t.Errorf("SecretValues = %v, want %v", got, want)
	}
}

func TestDefaults(t *testing.T) {
	inv, err := LoadBytes("mini.yaml", []byte("version: 1\ntargets: [web01, {name: web02, port: 2200}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := inv.Host("web01")
	c := h.SSH
	if c.Host != "web01" || c.Address != "web01" || c.Port != 22 || c.User != "tester" || c.ConnectTimeout != 10*time.Second || c.HostKeyCheck != "strict" || c.Sudo || c.Agent {
		t.Errorf("defaults = %+v", c)
	}
	if inv.Host("web02").SSH.Port != 2200 {
		t.Errorf("port = %d", inv.Host("web02").SSH.Port)
	}
	if len(h.Vars) != 0 || h.Groups != nil {
		t.Errorf("host = %+v", h)
	}
}

// The same host in several places merges; its own entries win in file order.
func TestHostMerge(t *testing.T) {
	src := `version: 1
targets:
  - {name: a, vars: {x: 1, y: 1}}
groups:
  g1:
    vars: {x: g1, z: g1}
    targets:
      - {name: a, address: 10.0.0.1, vars: {y: 2}, aliases: [alpha]}
  g2:
    vars: {z: g2}
    targets: [alpha]
`
	inv, err := LoadBytes("merge.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	h := inv.Host("a")
	if want := map[string]any{"x": 1, "y": 2, "z": "g2"}; !reflect.DeepEqual(h.Vars, want) {
		t.Errorf("vars = %v, want %v", h.Vars, want)
	}
	if h.SSH.Address != "10.0.0.1" || !reflect.DeepEqual(h.Groups, []string{"g1", "g2"}) || len(inv.Hosts) != 1 {
		t.Errorf("host = %+v", h)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string // "line:col: message" of each error, in order
	}{
		{"bad_keys.yaml", []string{
			`4:5: unknown key "usr" in config.ssh (did you mean "user"?) (expected one of: user, port, private_key, passphrase_env, agent, jump, connect_timeout, sudo, sudo_password_env, host_key_check, known_hosts)`,
			`5:11: ssh.port must be between 1 and 65535, got 70000`,
			`6:21: ssh.host_key_check must be one of strict, accept-new, off, got "maybe"`,
			`7:22: ssh.connect_timeout: invalid duration "10 seconds" (use a form like "10s" or "2m")`,
			`10:5: unknown key "target" in group "web" (did you mean "targets"?) (expected one of: targets, vars, config, groups)`,
			`11:11: group "web" vars must be a mapping, got a list`,
			`12:3: group name "all" is reserved (it selects every host)`,
			`14:3: invalid group name "bad name" (use letters, digits, '_' and '-')`,
		}},
		{"bad_hosts.yaml", []string{
			`5:5: target has no "name"`,
			`6:5: a target must be a host name or a mapping with "name", got an integer`,
			`11:18: host "web01": address "10.0.0.2" conflicts with address "10.0.0.1" set at 4:14`,
			`13:18: alias "web01" of host "web02" is the name of another host`,
			`15:21: invalid target name "db*" (no spaces, commas, '!' or glob characters)`,
			`16:3: group "web02" has the same name as host "web02"`,
		}},
		{"bad_env.yaml", []string{
			`3:16: var "token": environment variable TROUPE_TEST_SURELY_UNSET_VAR is not set`,
			`4:16: var "other": "not a name" is not an environment variable name`,
		}},
		{"bad_version.yaml", []string{
			`1:1: missing "version: 1" at the top of the inventory`,
			`5:7: group "g" is already defined at 3:3`,
		}},
		{"bad_jump.yaml", []string{
			`1:10: unsupported inventory version 2 (this troupe reads version 1)`,
			`6:26: jump host cycle: a -> b -> a`,
			`8:26: ssh.jump: invalid port "22x" in "user@:22x"`,
		}},
		{"bad_vip.yaml", []string{
			`2:32: var "lb_vip": "10.0.0.300/24" is not an IPv4 address like 10.0.0.29/24 (with the prefix length of its subnet)`,
			`5:20: var "lb_vip": "10.0.0.29/33": netip.ParsePrefix("10.0.0.29/33"): prefix length out of range`,
			`6:61: load balancer "lb02.example.com": with lb_vip its address must be an IP address (keepalived's unicast peers), got "lb02.example.com"`,
			`8:20: var "lb_vip": "fe80::1" is not an IPv4 address like 10.0.0.29/24 (with the prefix length of its subnet)`,
		}},
		{"bad_standby.yaml", []string{
			`7:15: host "ca1.example.com" is in group "ca" and group "ca_standby": the standby CA is another host than the CA`,
			`7:32: group "ca_standby" holds one host, the standby CA; "ca2.example.com" is a second`,
		}},
		{"bad_postgres.yaml", []string{
			`7:15: host "c1.example.com" is in group "compilers" and group "postgres": PuppetDB's PostgreSQL is another host than a compiler`,
			`7:31: group "postgres" holds one host, PuppetDB's PostgreSQL; "pg2.example.com" is a second`,
		}},
		{"bad_syntax.yaml", []string{
			`4:2: value is not allowed in this context`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join(fixtures, "inventory", tt.file))
			if err == nil {
				t.Fatal("no error")
			}
			list, ok := diag.As(err)
			if !ok {
				t.Fatalf("not positioned: %v", err)
			}
			var got []string
			for _, e := range list {
				if !strings.HasSuffix(e.File, tt.file) {
					t.Errorf("file = %q", e.File)
				}
				got = append(got, fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			golden(t, "inventory_"+strings.TrimSuffix(tt.file, ".yaml")+".txt", err.Error()+"\n")
		})
	}
}

func TestSelect(t *testing.T) {
	inv := loadSite(t)
	tests := []struct {
		expr    string
		want    []string
		wantErr string
	}{
		{expr: "all", want: names(inv.Hosts)},
		{expr: "compilers", want: []string{"compile01.example.com", "compile02.example.com", "compile03.example.com"}},
		{expr: "canary", want: []string{"compile01.example.com"}},
		{expr: "compilers,!canary", want: []string{"compile02.example.com", "compile03.example.com"}},
		{expr: "!compilers", want: []string{"bastion.example.com", "ca01.example.com", "lb01.example.com"}},
		{expr: "lb01.example.com, compile01", want: []string{"lb01.example.com", "compile01.example.com"}},
		{expr: "compile0[12]*", want: []string{"compile01.example.com", "compile02.example.com"}},
		{expr: "compile*,!compile03*", want: []string{"compile01.example.com", "compile02.example.com"}},
		{expr: "monitored,compilers,compile01", want: []string{"lb01.example.com", "compile01.example.com", "compile02.example.com", "compile03.example.com"}},
		{expr: "nothing*", want: nil},
		{expr: "bastion", want: []string{"bastion.example.com"}},
		{expr: "compilerz", wantErr: `unknown host or group "compilerz" (groups: all, ca, lb, compilers, canary, monitored)`},
		{expr: "compilers,!compilers", wantErr: `selector "compilers,!compilers" selects no hosts`},
		{expr: "ca,,lb", wantErr: `selector "ca,,lb" has an empty term`},
		{expr: "", wantErr: `empty target selector`},
		{expr: "[x", wantErr: `invalid glob "[x": syntax error in pattern`},
		{expr: "compile[", wantErr: `invalid glob "compile[": syntax error in pattern`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			hs, err := inv.Select(tt.expr)
			cerr := inv.CheckSelector(tt.expr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if cerr == nil {
					t.Error("CheckSelector accepted it")
				}
				return
			}
			if err != nil || cerr != nil {
				t.Fatal(err, cerr)
			}
			got := names(hs)
			if tt.want == nil {
				tt.want = []string{}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEmptyGroup(t *testing.T) {
	inv, err := LoadBytes("e.yaml", []byte("version: 1\ntargets: [a]\ngroups:\n  empty: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Select("empty"); err == nil || err.Error() != `group "empty" has no hosts` {
		t.Errorf("err = %v", err)
	}
}

func TestShow(t *testing.T) {
	inv := loadSite(t)
	var b bytes.Buffer
	inv.Show(&b)
	out := b.String()
	for _, s := range []string{"s3cr3t-db", "abc123", "hunter2"} {
		if strings.Contains(out, s) {
			t.Errorf("secret %q shown", s)
		}
	}
	golden(t, "inventory_show.txt", out)
}

// TestSSHFormsCoverTheSettings: an ssh setting added to the decoder without
// a form would be missing from the generated schema.
func TestSSHFormsCoverTheSettings(t *testing.T) {
	v := Vocabulary()
	if len(v.SSHForms) != len(v.SSHKeys) {
		t.Errorf("%d forms for %d ssh settings", len(v.SSHForms), len(v.SSHKeys))
	}
	for _, k := range v.SSHKeys {
		if v.SSHForms[k] == "" {
			t.Errorf("ssh setting %q has no form", k)
		}
	}
}
