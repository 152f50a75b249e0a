package status

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/puppet"
)

// fixture reads fixtures/status/NAME.txt: the probe script's real answer,
// captured on the lab (see TestDumpScript).
func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "status", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fromFixture is a host read from a fixture, as probe would fill it.
func fromFixture(t *testing.T, name, certname string, heads bool, roles ...string) *Host {
	t.Helper()
	return fromText(t, fixture(t, name), certname, heads, roles...)
}

func fromText(t *testing.T, out, certname string, heads bool, roles ...string) *Host {
	t.Helper()
	f, _ := puppet.Get("debian")
	h := &Host{Name: certname, Address: certname, Roles: roles, Packages: []Package{}, Services: []ServiceState{},
		spec: spec{Certname: certname, Roles: roles, Flavor: f, Socket: DefaultSocket, Heads: heads}}
	h.secs = splitSections(out)
	fill(h)
	return h
}

func TestSplitSections(t *testing.T) {
	secs := splitSections("junk\n" + marker + " a\nx\ny\n\n" + marker + " end 3\n" + marker + " b\npartial")
	if a := secs["a"]; a.Body != "x\ny" || a.RC != 3 || !a.Done {
		t.Errorf("a = %+v", a)
	}
	if b := secs["b"]; b.Body != "partial" || b.Done || b.failure() != "timeout" {
		t.Errorf("b = %+v", b)
	}
}

func TestFillCA(t *testing.T) {
	h := fromFixture(t, "ca-bootstrapping", "ca.lab.test", false, RoleCA)
	if h.Error != "" {
		t.Fatal(h.Error)
	}
	want := []Package{{Role: "server", Name: "puppetserver", Version: "7.9.5-2+deb12u1"}, {Role: "agent", Name: "puppet-agent", Version: "7.23.0-1+deb12u1"}}
	if len(h.Packages) != 2 || h.Packages[0] != want[0] || h.Packages[1] != want[1] {
		t.Errorf("packages %+v", h.Packages)
	}
	if len(h.Services) != 1 || h.Services[0] != (ServiceState{Name: "puppetserver", State: "active"}) {
		t.Errorf("services %+v", h.Services)
	}
	s := h.Server
	if s.Simple != "running" || s.Error != "" || len(s.NotRunning) != 0 || s.criticalErr != "" {
		t.Errorf("server %+v", s)
	}
	if s.JRuby == nil || *s.JRuby != (JRuby{Free: 1, Total: 1}) {
		t.Errorf("jruby %+v %s", s.JRuby, s.JRubyError)
	}
	c := h.Cert
	if c.Error != "" || !c.NotAfter.Equal(time.Date(2041, 11, 28, 12, 52, 11, 0, time.UTC)) || strings.Join(c.SANs, " ") != "DNS:ca.lab.test DNS:ca" {
		t.Errorf("cert %+v", c)
	}
	if len(h.CA.Certs) != 2 || len(h.CA.CRLs) != 2 || h.CA.Certs[1].Name != "Puppet Root CA: 44e232a614bc16" || h.CA.Error != "" {
		t.Errorf("ca %+v", h.CA)
	}
	if len(h.Code.Envs) != 2 || h.Code.Envs[1] != (Env{Name: "production", Commit: "cba9ab4df47184f317faf142be975fb6bf643d4b",
		Deployed: time.Date(2026, 12, 2, 12, 52, 16, 0, time.UTC)}) {
		t.Errorf("code %+v", h.Code)
	}
}

func TestFillPuppetDB(t *testing.T) {
	h := fromFixture(t, "puppetdb-empty", "puppetdb.lab.test", false, RolePuppetDB, RoleDatabase)
	p := h.PuppetDB
	if p.State != "running" || p.QueueDepth == nil || *p.QueueDepth != 0 || p.Nodes != 0 || !p.LastCommand.IsZero() || p.Error != "" {
		t.Errorf("puppetdb %+v", p)
	}
	if len(h.Services) != 2 || h.Services[1].Name != "postgresql" || h.Services[1].State != "active" {
		t.Errorf("services %+v", h.Services)
	}
	if h.Packages[0].Name != "puppetdb" || h.Packages[0].Version != "7.12.1-3" {
		t.Errorf("packages %+v", h.Packages)
	}
}

func TestHTTPFailures(t *testing.T) {
	for _, c := range []struct {
		sec  section
		want string
	}{
		{section{Body: "000", RC: 7, Done: true}, "connection refused"},
		{section{Body: "000", RC: 28, Done: true}, "timeout"},
		{section{Body: "partial"}, "timeout"},
		{section{Body: "nope\n404", Done: true}, "HTTP 404: nope"},
		{section{Body: "garbage", Done: true}, `no HTTP status in "garbage"`},
	} {
		_, err := httpOK(c.sec)
		if err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v, want %s", c.sec, err, c.want)
		}
	}
	// a starting server answers 503 with its state
	srv := readServer(section{Body: "starting\n503", Done: true}, section{Body: "x\n503", Done: true}, section{Body: "x\n503", Done: true})
	if srv.Simple != "starting" || srv.Error != "" {
		t.Errorf("503: %+v", srv)
	}
}

func TestParseNodes(t *testing.T) {
	n, last, err := parsePDBNodes(`[{"certname":"a","facts_timestamp":"2026-12-02T13:01:02.123Z","catalog_timestamp":null,"report_timestamp":"2026-12-02T13:05:00.000Z"},
{"certname":"b","facts_timestamp":"2026-12-02T12:00:00Z","catalog_timestamp":"2026-12-02T13:04:00Z","report_timestamp":null}]`)
	if err != nil || n != 2 || !last.Equal(time.Date(2026, 12, 2, 13, 5, 0, 0, time.UTC)) {
		t.Errorf("%d %v %v", n, last, err)
	}
}

func TestControlErrorMasksPassword(t *testing.T) {
	remote := "https://user:tok3n-secret@git.example.com/x.git"
	h := fromText(t, "\n"+marker+" heads\nremote "+remote+"\nfatal: unable to access '"+remote+"/': 403\n"+marker+" end 128\n",
		"c1.example.com", true, RoleCompiler)
	c := control([]*Host{h})
	if strings.Contains(c.Error+c.Remote, "tok3n-secret") || !strings.Contains(c.Error, "403") {
		t.Errorf("%+v", c)
	}
}

// The control repository's password is masked in the table and in the JSON
// whether or not net/url can parse the URL, and wherever git quotes it.
func TestControlPasswordMaskedTableAndJSON(t *testing.T) {
	// the last one is cut inside the password by the 80-character error
	for _, pass := range []string{"tok3n-secret", "tok/3n-secret", "tok%3n-secret", "tok#3n-secret", "tok/" + strings.Repeat("s3cr3t", 12)} {
		remote := "https://deploy:" + pass + "@git.example.com/control.git"
		for _, body := range []string{
			"remote " + remote + "\n" + prodCommit + "\trefs/heads/production\n" + marker + " end 0",
			"remote " + remote + "\nfatal: unable to access '" + remote + "/': 403\n" + marker + " end 128",
		} {
			h := fromText(t, "\n"+marker+" heads\n"+body+"\n", "c1.example.com", true, RoleCompiler)
			site := Judge([]*Host{h}, now, DefaultHorizon)
			js, err := json.Marshal(site)
			if err != nil {
				t.Fatal(err)
			}
			tab := plainTable(site)
			for name, out := range map[string]string{"table": tab, "json": string(js)} {
				if strings.Contains(out, pass[:12]) {
					t.Errorf("%s shows the password %q:\n%s", name, pass, out)
				}
				if !strings.Contains(out, "https://deploy:********@git.example.com/control.gi") {
					t.Errorf("%s: no masked URL:\n%s", name, out)
				}
			}
		}
	}
}
