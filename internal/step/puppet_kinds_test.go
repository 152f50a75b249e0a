package step

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/goccy/go-yaml/parser"

	"github.com/troupe/troupe/internal/haproxy"
	"github.com/troupe/troupe/internal/transport"
	"github.com/troupe/troupe/internal/transport/transporttest"
)

func TestPuppetIni(t *testing.T) {
	const before = `# managed by the package
[main]
ssldir = /var/lib/puppet/ssl
server=old.example.com
server = dup.example.com

[master]
vardir = /var/lib/puppetserver
`
	const want = `# managed by the package
[main]
ssldir = /var/lib/puppet/ssl
server = ca.lab.test
ca_server = ca.lab.test

[master]
vardir = /var/lib/puppetserver

[server]
storeconfigs = true
`
	s := &fakeSite{hosts: map[string]*fakeConn{"h": newFake(t)}}
	s.hosts["h"].set("/etc/puppet/puppet.conf", []byte(before))
	step := &PuppetIni{Path: "{{ .flavor.paths.confdir }}/puppet.conf", Settings: map[string]map[string]string{
		"main":   {"server": "ca.lab.test", "ca_server": "ca.lab.test"},
		"server": {"storeconfigs": "true"},
	}}
	res, err := step.Run(context.Background(), s.exec(t, "h"))
	if err != nil || !res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	if got := string(s.hosts["h"].file("/etc/puppet/puppet.conf")); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if res, _ := step.Run(context.Background(), s.exec(t, "h")); res.Changed {
		t.Error("second run changed")
	}
	// The operator's spelling of an equal value is kept; absent removes.
	s.hosts["h"].set("/etc/puppet/puppet.conf", []byte("[main]\nserver=ca.lab.test\nfoo = 1\n"))
	step = &PuppetIni{Path: "/etc/puppet/puppet.conf", Settings: map[string]map[string]string{"main": {"server": "ca.lab.test"}},
		Absent: map[string][]string{"main": {"foo"}}}
	step.Run(context.Background(), s.exec(t, "h"))
	if got := string(s.hosts["h"].file("/etc/puppet/puppet.conf")); got != "[main]\nserver=ca.lab.test\n" {
		t.Errorf("got %q", got)
	}
}

func TestPuppetConfig(t *testing.T) {
	s := &fakeSite{hosts: map[string]*fakeConn{"h": newFake(t)}}
	s.hosts["h"].reply("/usr/bin/puppet config print ssldir hostcert --section server", "ssldir = /var/lib/puppet/ssl\nhostcert = /var/lib/puppet/ssl/certs/h.pem\n")
	s.hosts["h"].reply("/usr/bin/puppet config print cadir --section server", "/etc/puppet/puppetserver/ca\n")
	res, err := (&PuppetConfig{Keys: []string{"ssldir", "hostcert"}, Section: "server"}).Run(context.Background(), s.exec(t, "h"))
	if err != nil || res.Data.(map[string]any)["hostcert"] != "/var/lib/puppet/ssl/certs/h.pem" {
		t.Fatalf("%+v %v", res, err)
	}
	res, err = (&PuppetConfig{Keys: []string{"cadir"}, Section: "server"}).Run(context.Background(), s.exec(t, "h"))
	if err != nil || res.Data.(map[string]any)["cadir"] != "/etc/puppet/puppetserver/ca" {
		t.Fatalf("%+v %v", res, err)
	}
	// an unknown setting: Puppet prints the known ones only
	s.hosts["h"].Respond(transporttest.Contains("config print ssldir nope"), transport.Result{Stdout: "ssldir = /var/lib/puppet/ssl\n", Stderr: "Warning: No such setting: nope\n"})
	_, err = (&PuppetConfig{Keys: []string{"ssldir", "nope"}}).Run(context.Background(), s.exec(t, "h"))
	if err == nil {
		t.Error("missing key accepted")
	}
}

// haproxy 2.6's answers, as captured in the lab (docs/lab.md).
const serversState = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 compilers 1 compile1 10.77.0.11 2 %d 1 1 6 6 3 4 6 0 0 0 - 8140 - 0 0 - - 0
3 compilers 2 compile2 10.77.0.12 2 0 1 1 6 6 3 4 6 0 0 0 - 8140 - 0 0 - - 0
`

const showStat = `# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck
puppet,FRONTEND,,,0,1,,1,,,,,,,,,,OPEN,,,
compilers,compile1,0,0,%d,1,,3,,,,,,0,0,0,0,%s,1,1,0
compilers,compile2,0,0,0,1,,3,,,,,,0,0,0,0,UP,1,1,0
compilers,BACKEND,0,0,0,1,,6,,,,,,0,0,0,0,UP,2,2,0
`

func TestLBServer(t *testing.T) {
	lb := newFake(t)
	admin, scur := 0, 2
	lb.on("show servers state", func(string) transport.Result { return transport.Result{Stdout: fmt.Sprintf(serversState, admin)} })
	lb.on("show stat", func(string) transport.Result {
		st := "UP"
		if admin&haproxy.AdmForcedDrain != 0 {
			st = "DRAIN"
			if scur > 0 {
				scur-- // sessions finish while we wait
			}
		}
		return transport.Result{Stdout: fmt.Sprintf(showStat, scur, st)}
	})
	lb.on("set server compilers/compile1 state drain", func(string) transport.Result { admin = haproxy.AdmForcedDrain; return transport.Result{Stdout: "\n"} })
	lb.on("set server compilers/compile1 state ready", func(string) transport.Result { admin = 0; return transport.Result{} })
	s := &fakeSite{
		hosts:  map[string]*fakeConn{"compile1.lab.test": newFake(t), "lb.lab.test": lb},
		groups: map[string][]string{"loadbalancer": {"lb.lab.test"}},
	}
	ctx := context.Background()
	res, err := (&LBServer{State: "drain"}).Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || !res.Changed || !strings.Contains(res.Msg, "0 sessions") {
		t.Fatalf("drain: %+v %v", res, err)
	}
	if scur != 0 {
		t.Errorf("did not wait for sessions: %d", scur)
	}
	res, err = (&LBServer{State: "drain"}).Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || res.Changed {
		t.Errorf("drain again: %+v %v", res, err)
	}
	res, err = (&LBServer{State: "ready"}).Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || !res.Changed || !strings.Contains(res.Msg, "UP") {
		t.Errorf("ready: %+v %v", res, err)
	}
	if got := lb.ranMatching("set server"); len(got) != 2 || !strings.Contains(got[0], "socat stdio unix-connect:/run/haproxy/admin.sock") {
		t.Errorf("commands %v", got)
	}
	if _, err := (&LBServer{State: "ready", Server: "compile9"}).Run(ctx, s.exec(t, "compile1.lab.test")); err == nil || !strings.Contains(err.Error(), "no server compile9") {
		t.Errorf("unknown server: %v", err)
	}
	// absent: ok — a server already out of the backend is drained and in
	// maintenance as far as agents can tell; ready still needs it
	for _, state := range []string{"drain", "maint"} {
		res, err := (&LBServer{State: state, Server: "compile9", Absent: "ok"}).Run(ctx, s.exec(t, "compile1.lab.test"))
		if err != nil || res.Changed || !strings.Contains(res.Msg, "not in the backend") {
			t.Errorf("%s a missing server with absent ok: %+v %v", state, res, err)
		}
	}
	if _, err := (&LBServer{State: "ready", Server: "compile9", Absent: "ok"}).Run(ctx, s.exec(t, "compile1.lab.test")); err == nil {
		t.Errorf("ready for a missing server with absent ok: no error")
	}
	if err := (&LBServer{State: "drain", Absent: "maybe"}).Validate(); err == nil {
		t.Errorf("absent maybe: no validation error")
	}
}

func TestPuppetCode(t *testing.T) {
	h := newFake(t)
	sha := "1111111111111111111111111111111111111111"
	h.on("git ls-remote", func(string) transport.Result {
		return transport.Result{Stdout: sha + "\trefs/heads/production\n2222222222222222222222222222222222222222\trefs/heads/feature/x\n"}
	})
	envs := ""
	h.on("ls -1", func(string) transport.Result { return transport.Result{Stdout: envs} })
	h.on("deploy environment", func(string) transport.Result {
		envs = "feature_x\nproduction\n"
		h.set("/etc/puppet/code/environments/production/.r10k-deploy.json", []byte(`{"signature":"`+sha+`"}`))
		h.set("/etc/puppet/code/environments/feature_x/.r10k-deploy.json", []byte(`{"signature":"2222222222222222222222222222222222222222"}`))
		return transport.Result{}
	})
	s := &fakeSite{hosts: map[string]*fakeConn{"c": h}}
	step := &PuppetCode{Remote: "http://10.77.0.1:8800/control.git", Basedir: "/etc/puppet/code/environments"}
	res, err := step.Run(context.Background(), s.exec(t, "c"))
	if err != nil || !res.Changed || res.Msg != "feature_x@222222222222 production@111111111111" {
		t.Fatalf("%+v %v", res, err)
	}
	if got := h.ranMatching("deploy environment"); len(got) != 1 || !strings.Contains(got[0], "/usr/bin/r10k deploy environment --config /etc/puppetlabs/r10k/r10k.yaml --modules") {
		t.Errorf("r10k: %v", got)
	}
	res, err = step.Run(context.Background(), s.exec(t, "c"))
	if err != nil || res.Changed {
		t.Errorf("second run: %+v %v", res, err)
	}
	if res.Data.(map[string]any)["environments"].(map[string]any)["production"] != sha {
		t.Errorf("data %v", res.Data)
	}
}

// TestPuppetCodeOneEnvironment: with environment set, only that branch is
// compared and deployed; another branch's drift neither triggers nor fails it.
func TestPuppetCodeOneEnvironment(t *testing.T) {
	h := newFake(t)
	prod, feat := strings.Repeat("1", 40), strings.Repeat("2", 40)
	h.reply("git ls-remote", prod+"\trefs/heads/production\n"+feat+"\trefs/heads/feature/x\n")
	envs := ""
	h.on("ls -1", func(string) transport.Result { return transport.Result{Stdout: envs} })
	h.on("deploy environment", func(string) transport.Result {
		envs = "production\n" // feature_x stays undeployed: r10k was told one environment
		h.set("/code/production/.r10k-deploy.json", []byte(`{"signature":"`+prod+`"}`))
		return transport.Result{}
	})
	s := &fakeSite{hosts: map[string]*fakeConn{"c": h}}
	step := &PuppetCode{Remote: "http://x/c.git", Basedir: "/code", Environment: "{{ .vars.env }}"}
	x := s.exec(t, "c")
	x.Data["vars"] = map[string]any{"env": "production"}
	res, err := step.Run(context.Background(), x)
	if err != nil || !res.Changed || res.Msg != "production@111111111111" {
		t.Fatalf("%+v %v", res, err)
	}
	if got := h.ranMatching("deploy environment"); len(got) != 1 || !strings.Contains(got[0], "deploy environment production --config") {
		t.Errorf("r10k: %v", got)
	}
	if res, err = step.Run(context.Background(), x); err != nil || res.Changed {
		t.Errorf("second run must be unchanged although feature_x is not deployed: %+v %v", res, err)
	}
	x.Data["vars"] = map[string]any{"env": "gone"}
	if _, err := step.Run(context.Background(), x); err == nil || !strings.Contains(err.Error(), `environment "gone": no such branch`) {
		t.Errorf("unknown environment: %v", err)
	}
}

// TestDecode checks the kinds' YAML shapes through the registry.
func TestPuppetKindsDecode(t *testing.T) {
	for kind, body := range map[string]string{
		"puppet_cert":   "{ca: ca.lab.test, dns_alt_names: [puppet.lab.test]}",
		"puppet_config": "{keys: [ssldir], section: server}",
		"puppet_ini":    "{path: /etc/puppet/puppet.conf, settings: {main: {server: x}}}",
		"puppet_code":   "{remote: http://x/c.git, basedir: /etc/puppet/code/environments}",
		"lb_server":     "{state: drain, timeout: 5m}",
	} {
		f, err := parser.ParseBytes([]byte(body), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (Registry{}).Decode(kind, f.Docs[0].Body); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}
	f, _ := parser.ParseBytes([]byte("{state: up}"), 0)
	if _, err := (Registry{}).Decode("lb_server", f.Docs[0].Body); err == nil {
		t.Error("bad state accepted")
	}
}
