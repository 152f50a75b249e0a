package haproxy

import (
	"os"
	"strings"
	"testing"
)

// section cuts one probe's answer out of a troupe status fixture (HAProxy
// 2.6 on the lab's load balancer, Debian 12).
func section(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../fixtures/status/lb-healthy.txt")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "@@troupe-status@@ "+name+"\n")
	if !ok {
		t.Fatalf("no section %s", name)
	}
	body, _, _ := strings.Cut(rest, "@@troupe-status@@ end")
	return body
}

func TestServersState(t *testing.T) {
	out := section(t, "lbstate")
	all, err := ParseServersState(out)
	if err != nil || len(all) != 2 {
		t.Fatalf("%+v %v", all, err)
	}
	s, err := FindServerState(out, "compilers", "compile2")
	if err != nil || s.OpState != 2 || s.Admin() != "ready" {
		t.Errorf("%+v %v", s, err)
	}
	if _, err := FindServerState(out, "compilers", "compile9"); err == nil || !strings.Contains(err.Error(), "lists 2 servers") {
		t.Errorf("missing server: %v", err)
	}
	for adm, want := range map[int]string{AdmForcedDrain: "drain", AdmForcedMaint: "maint", AdmForcedMaint | AdmForcedDrain: "maint"} {
		if got := (ServerState{AdminState: adm}).Admin(); got != want {
			t.Errorf("admin %d = %s, want %s", adm, got, want)
		}
	}
	if _, err := ParseServersState("Can't find backend.\n"); err == nil {
		t.Error("HAProxy's error not returned")
	}
}

func TestStat(t *testing.T) {
	out := section(t, "lbstat")
	rows := ParseStat(out)
	if len(rows) != 2 { // FRONTEND and BACKEND rows are left out
		t.Fatalf("%+v", rows)
	}
	s, err := FindStat(out, "compilers", "compile1")
	if err != nil || s.Status != "UP" || s.CheckStatus != "L7OK" || s.Scur != 0 {
		t.Errorf("%+v %v", s, err)
	}
}
