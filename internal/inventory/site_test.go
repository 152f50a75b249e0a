package inventory

import (
	"reflect"
	"testing"
)

func TestSiteFor(t *testing.T) {
	inv, err := LoadBytes("inv.yaml", []byte(`version: 1
vars: {lb_name: puppet.example.com, lb_aliases: [puppet]}
groups:
  ca: {targets: [ca1.example.com]}
  ca_standby: {targets: [ca2.example.com]}
  compilers: {targets: [c1.example.com, c2.example.com]}
  loadbalancer: {targets: [lb1.example.com]}
  puppetdb: {targets: [db1.example.com, db2.example.com], vars: {puppetdb_name: puppetdb.example.com}}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := inv.SiteFor(inv.Host("c2.example.com"))
	want := Site{CA: "ca1.example.com", CAStandby: "ca2.example.com", PuppetDB: "db1.example.com", PuppetDBs: []string{"db1.example.com", "db2.example.com"},
		Database:  "db1.example.com",
		Compilers: []string{"c1.example.com", "c2.example.com"}, LoadBalancer: "lb1.example.com",
		CAName: "ca1.example.com", LBName: "puppet.example.com", PuppetDBName: "db1.example.com",
		PuppetDBURLs:     "https://db2.example.com:8081,https://db1.example.com:8081", // c2 starts at the second
		CompilerAltNames: "puppet.example.com,puppet,c2.example.com,c2", CAAltNames: "ca1.example.com,c2.example.com,c2"}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("site for c2:\n got %+v\nwant %+v", s, want)
	}
	// the names are the host's vars: a group's var reaches its hosts only
	if got := inv.SiteFor(inv.Host("db2.example.com")).PuppetDBName; got != "puppetdb.example.com" {
		t.Errorf("puppetdb_name on db2: %q", got)
	}
	// c1 and the CA (no compiler) start at the first; puppetdb_name alone
	for host, want := range map[string]string{
		"c1.example.com":  "https://db1.example.com:8081,https://db2.example.com:8081",
		"ca1.example.com": "https://db1.example.com:8081,https://db2.example.com:8081",
		"db2.example.com": "https://puppetdb.example.com:8081",
	} {
		if got := inv.SiteFor(inv.Host(host)).PuppetDBURLs; got != want {
			t.Errorf("puppetdb_urls on %s: %q, want %q", host, got, want)
		}
	}
	if len(s.Data()) != len(SiteKeys) {
		t.Errorf("Data has %d keys, SiteKeys %d", len(s.Data()), len(SiteKeys))
	}
	for _, k := range SiteKeys {
		if _, ok := s.Data()[k]; !ok {
			t.Errorf("Data lacks %s", k)
		}
	}
}
