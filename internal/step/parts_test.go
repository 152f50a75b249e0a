package step

import (
	"context"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/transport"
	"github.com/troupe/troupe/internal/transport/transporttest"
)

// parts name the flavor's packages (debian: puppetserver, puppet-agent,
// puppet-terminus-puppetdb, puppetdb), each with its rendered version.
func TestPackageParts(t *testing.T) {
	h := newAptHost(t)
	h.reply("dpkg-query -W", "puppetserver 7.9.5-2 ii\npuppet-agent 7.23.0-1 ii\n")
	p := &Package{Parts: Parts{"server": "{{ .vars.v }}", "agent": ""}, Names: []string{"git"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &fakeSite{hosts: map[string]*fakeConn{"c": h.fakeConn}}
	x := s.exec(t, "c")
	x.Data["vars"] = map[string]any{"v": "7.9.5-2+troupe1"}
	res, err := p.Run(context.Background(), x)
	if err != nil || !res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	// git and the server's pinned version; the agent, installed, is present
	h.Received(t, transporttest.Equal(aptGet+" install --allow-downgrades git puppetserver=7.9.5-2+troupe1"))
	if got := p.Title(); got != "Package git the server, the agent present" {
		t.Errorf("title %q", got)
	}

	for _, bad := range []*Package{{Parts: Parts{"sever": ""}}, {Parts: Parts{"server": "1"}, State: "absent"}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	// no flavor: parts cannot be named
	x.Flavor = nil
	if _, err := p.Run(context.Background(), x); err == nil || !strings.Contains(err.Error(), "flavor") {
		t.Errorf("without a flavor: %v", err)
	}
}

// package_facts with parts: records by part too, with the package's name.
func TestPackageFactsParts(t *testing.T) {
	c := newFake(t)
	c.On(transporttest.Contains("apt-cache policy"), func(cmd transporttest.Command) transport.Result {
		if !strings.Contains(cmd.Command, "apt-cache policy puppetserver") {
			t.Errorf("policy of %q", cmd.Command)
		}
		return transport.Result{Stdout: aptPolicyOut + "#holds\n"}
	})
	p := &PackageFacts{Parts: Parts{"server": "", "db": ""}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &fakeSite{hosts: map[string]*fakeConn{"c": c}}
	res, err := p.Run(context.Background(), s.exec(t, "c"))
	if err != nil {
		t.Fatal(err)
	}
	parts := res.Data.(map[string]any)["parts"].(map[string]any)
	server, ok := parts["server"].(map[string]any)
	if !ok || server["package"] != "puppetserver" || server["target"] != "7.9.5-2+deb12u1+troupe1" || server["upgrade"] != true {
		t.Errorf("server: %+v", parts)
	}
	if _, ok := parts["db"]; ok { // puppetdb is not installed there
		t.Errorf("db: %+v", parts["db"])
	}
}

// part names the flavor's unit.
func TestServicePart(t *testing.T) {
	h := newUnitHost(t, true, true)
	s := &Service{Part: "server", State: "reloaded"}
	if _, _, err := runService(t, h, false, s); err != nil {
		t.Fatal(err)
	}
	h.Received(t, transporttest.Equal("systemctl reload puppetserver"))
	for _, bad := range []*Service{{Part: "web", State: "started"}, {Part: "server", Name: "x", State: "started"}, {State: "started"}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Under --noop on a host where the shown install did not happen, puppet
// config print is not there: the flavor's paths stand in, said so; with
// nothing shown, its absence is an error.
func TestPuppetConfigBeforeInstall(t *testing.T) {
	c := newFake(t)
	c.Fail(transporttest.Contains("config print"), 127, "sh: 1: /usr/bin/puppet: not found")
	s := &fakeSite{hosts: map[string]*fakeConn{"c.lab.test": c}}
	p := &PuppetConfig{Keys: []string{"confdir", "hostcert", "lastrunfile"}}
	x := s.exec(t, "c.lab.test")
	if _, err := p.Run(context.Background(), x); err == nil {
		t.Fatal("puppet missing on a host with nothing shown: no error")
	}
	x.Unapplied = true
	res, err := p.Run(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	d := res.Data.(map[string]any)
	if d["confdir"] != "/etc/puppet" || d["hostcert"] != "/var/lib/puppet/ssl/certs/c.lab.test.pem" || !strings.Contains(d["lastrunfile"].(string), "known once puppet is installed") {
		t.Errorf("data %v", d)
	}
	said := false
	for _, e := range s.events {
		said = said || strings.Contains(e.Text, "the flavor's default paths stand in")
	}
	if !said {
		t.Error("the stand-in is not said")
	}
}
