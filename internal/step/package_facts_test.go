package step

import (
	"slices"
	"testing"
)

func TestCompareDebVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"7.9.5-2+deb12u1+troupe1", "7.9.5-2+deb12u1", 1},
		{"7.9.5-2+deb12u1", "7.9.5-2+deb12u1", 0},
		{"7.10.0-1", "7.9.5-2", 1},
		{"1:1.0", "2.0", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0", "1.0+b1", -1},
		{"8.4.1-4", "8.4.1-10", -1},
		{"1.0a", "1.0+", -1}, // letters sort before other characters
		{"1.01", "1.1", 0},
	} {
		if got := CompareDebVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareDebVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := CompareDebVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareDebVersions(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

// The output of apt-cache policy on a lab host with the upgrade repository added.
const aptPolicyOut = `puppetserver:
  Installed: 7.9.5-2+deb12u1
  Candidate: 7.9.5-2+deb12u1+troupe1
  Version table:
     7.9.5-2+deb12u1+troupe1 500
        500 http://10.77.8.1:8800/upgrade ./ Packages
 *** 7.9.5-2+deb12u1 500
        500 http://10.77.8.1:8800/debian ./ Packages
        100 /var/lib/dpkg/status
puppetdb:
  Installed: (none)
  Candidate: 7.12.1-3
  Version table:
     7.12.1-3 500
        500 http://10.77.8.1:8800/debian ./ Packages
`

func TestParseAptPolicy(t *testing.T) {
	f := parseAptPolicy(aptPolicyOut)
	ps := f["puppetserver"]
	if ps.Installed != "7.9.5-2+deb12u1" || !slices.Equal(ps.Offered, []string{"7.9.5-2+deb12u1+troupe1", "7.9.5-2+deb12u1"}) {
		t.Errorf("puppetserver: %+v", ps)
	}
	if db := f["puppetdb"]; db.Installed != "" || !slices.Equal(db.Offered, []string{"7.12.1-3"}) {
		t.Errorf("puppetdb: %+v", db)
	}
}
