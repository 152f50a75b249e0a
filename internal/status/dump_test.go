//go:build dump

package status

import (
	"os"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/puppet"
)

// TestDumpScript (go test -tags dump) writes the probe script for $DUMP (certname) with the
// roles in $DUMP_ROLES to /tmp/status-script.sh: how fixtures/status/ was
// captured (bin/troupe lab ssh HOST 'sudo sh' < /tmp/status-script.sh).
func TestDumpScript(t *testing.T) {
	if os.Getenv("DUMP") == "" {
		t.Fatal("set DUMP=certname DUMP_ROLES=ca,compiler,... to write /tmp/status-script.sh")
	}
	f, _ := puppet.Get("debian")
	s := spec{Certname: os.Getenv("DUMP"), Roles: strings.Split(os.Getenv("DUMP_ROLES"), ","), Flavor: f, Socket: DefaultSocket,
		Heads: os.Getenv("DUMP_HEADS") != ""}
	if err := os.WriteFile("/tmp/status-script.sh", []byte(s.script()), 0o644); err != nil {
		t.Fatal(err)
	}
}
