package status

import (
	"strconv"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/puppet"
)

// TestCAReplica: with a standby CA, the CA's probe reads the push's state
// and the standby's its snapshot; a CA whose last push carried what it
// holds, and a standby with that serial and puppetserver not running, are
// healthy; a path unit that does not watch, a failed push, a change waiting
// past replicaBehind, a standby whose serial is not the pushed one, and a
// standby whose puppetserver runs (two CAs) are each bad.
func TestCAReplica(t *testing.T) {
	f, _ := puppet.Get("debian")
	caSpec := spec{Certname: "ca.lab.test", Roles: []string{RoleCA}, Flavor: f, Standby: true}
	sbSpec := spec{Certname: "ca2.lab.test", Roles: []string{RoleStandby}, Flavor: f}
	if !strings.Contains(caSpec.script(), "sec careplica;") || !strings.Contains(sbSpec.script(), "sec replica;") ||
		strings.Contains((spec{Certname: "ca", Roles: []string{RoleCA}, Flavor: f}).script(), "careplica") {
		t.Fatal("the CA's script reads the push only with a standby, the standby's its snapshot")
	}
	if len(sbSpec.services()) != 0 || !sbSpec.enrolled() {
		t.Errorf("the standby: services %v (want none: its puppetserver is masked), enrolled %v", sbSpec.services(), sbSpec.enrolled())
	}
	const now = "now 1796666000\n"
	inSync := "pushed 1796665990\nsum 111\nserial 000B\n" + now + "cursum 111\ncurserial 000B\nchanged 1796665989\nwatch active\nresult success\n"
	behind := func(changedAgo int, result string) string {
		return "pushed 1796665000\nsum 111\nserial 000B\n" + now + "cursum 222\ncurserial 000C\n" +
			"changed " + strconv.Itoa(1796666000-changedAgo) + "\nwatch active\nresult " + result + "\n"
	}
	standby := func(serial, server string) string {
		return "now 1796666000\nsnapshot 1796665990\nserial " + serial + "\nserver " + server + "\n"
	}
	for _, tc := range []struct {
		name, ca, standby, problem string
		text                       string // the CA's cell
	}{
		{"in sync", inSync, standby("000B", "inactive"), "", "standby in sync"},
		{"a push on its way", behind(2, "success"), standby("000B", "inactive"), "", "standby 2s behind"},
		{"behind", behind(61, "success"), standby("000B", "inactive"), "the standby CA is 1m1s behind the CA (serial 000B pushed, 000C now)", ""},
		{"push failed", behind(5, "exit-code"), standby("000B", "inactive"), "the last push to the standby CA failed (exit-code)", ""},
		{"not watching", strings.Replace(inSync, "watch active", "watch inactive", 1), standby("000B", "inactive"), "troupe-ca-replica.path is inactive", ""},
		{"never pushed", now + "cursum 222\ncurserial 0002\nchanged 1796665989\nwatch active\nresult success\n", standby("000B", "inactive"), "never pushed to the standby", ""},
		{"standby differs", inSync, standby("0009", "inactive"), "the standby's snapshot has serial 0009, the CA pushed 000B", ""},
		{"standby serves", inSync, standby("000B", "activating"), "puppetserver is activating on the standby CA: two CAs may sign", ""},
		{"no snapshot", inSync, "now 1796666000\nsnapshot \nserial \nserver inactive\n", "no snapshot of the CA directory", ""},
	} {
		ca, sb, texts := judgeReplicas(caSpec, sbSpec, tc.ca, tc.standby)
		got := strings.Join(texts, "\n")
		switch {
		case tc.problem == "" && got != "":
			t.Errorf("%s: problems %q, want none", tc.name, got)
		case tc.problem != "" && (len(texts) != 1 || !strings.Contains(got, tc.problem) || max(ca.Replica.Level, sb.Replica.Level) != Bad):
			t.Errorf("%s: problems %q (levels %v, %v), want one bad: %q", tc.name, got, ca.Replica.Level, sb.Replica.Level, tc.problem)
		}
		if tc.text != "" && replicaText(ca) != tc.text {
			t.Errorf("%s: the CA's cell says %q, want %q", tc.name, replicaText(ca), tc.text)
		}
	}
}

// TestCAFailedOver: after plan ca-failover the old CA (its state fenced)
// is bad until the inventory is swapped, and the promoted standby (its
// state active, its puppetserver running) is a warning, not "two CAs";
// each cell says which. Without the states the same hosts are the usual
// "two CAs" problem (the positive control).
func TestCAFailedOver(t *testing.T) {
	f, _ := puppet.Get("debian")
	caSpec := spec{Certname: "ca.lab.test", Roles: []string{RoleCA}, Flavor: f, Standby: true}
	sbSpec := spec{Certname: "ca2.lab.test", Roles: []string{RoleStandby}, Flavor: f}
	if !strings.Contains(caSpec.script(), CAState) || !strings.Contains(sbSpec.script(), CAState) {
		t.Fatal("both scripts read the CA state file")
	}
	pusher := "pushed 1796665990\nsum 111\nserial 000B\nnow 1796666000\ncursum 111\ncurserial 000B\nchanged 1796665989\nwatch inactive\nresult success\n"
	snapshot := "now 1796666000\nsnapshot 1796665990\nserial 000B\nserver active\n"
	for _, failedOver := range []bool{true, false} {
		caBody, sbBody := pusher, snapshot
		if failedOver {
			caBody += "castate fenced\n"
			sbBody += "castate active\n"
		}
		ca, sb, texts := judgeReplicas(caSpec, sbSpec, caBody, sbBody)
		got := strings.Join(texts, "\n")
		// troupe_ca_active: the promoted standby, else the CA
		caOn, _ := ca.caActive()
		sbOn, _ := sb.caActive()
		if want := map[bool][2]float64{true: {0, 1}, false: {1, 0}}[failedOver]; [2]float64{caOn, sbOn} != want {
			t.Errorf("failed over %v: troupe_ca_active CA %v, standby %v; want %v", failedOver, caOn, sbOn, want)
		}
		if failedOver {
			if ca.Replica.Level != Bad || sb.Replica.Level != Warn || !strings.Contains(got, "fenced this CA") || !strings.Contains(got, "the site's CA since plan ca-failover") {
				t.Errorf("failed over: levels %v, %v; problems %q", ca.Replica.Level, sb.Replica.Level, got)
			}
			if replicaText(ca) != "fenced (ca-failover)" || replicaText(sb) != "active CA (ca-failover)" {
				t.Errorf("failed over: cells %q, %q", replicaText(ca), replicaText(sb))
			}
			continue
		}
		if !strings.Contains(got, "two CAs may sign") || strings.Contains(got, "ca-failover fenced") {
			t.Errorf("without the states: problems %q, want the two-CAs problem", got)
		}
	}
}

// judgeReplicas reads the CA's and the standby's replica sections (bodies
// as the probe prints them), judges them, and returns both hosts and the
// problems' texts.
func judgeReplicas(caSpec, sbSpec spec, caBody, sbBody string) (ca, sb *Host, texts []string) {
	sec := func(body string) section { return section{Body: body, Done: true} }
	ca = &Host{Name: "ca.lab.test", spec: caSpec, Replica: readPusher(sec(caBody))}
	sb = &Host{Name: "ca2.lab.test", spec: sbSpec, Replica: readSnapshot(sec(sbBody))}
	j := judge{site: &Site{Hosts: []*Host{ca, sb}}}
	j.replicas()
	for _, p := range j.site.Problems {
		texts = append(texts, p.Text)
	}
	return ca, sb, texts
}
