package status

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/transport"
)

// A site larger than probeSlots is read probeSlots hosts at a time, and
// every host is read: the dial of each is counted while it is open.
func TestCollectBoundsHostsAtOnce(t *testing.T) {
	const n = probeSlots*2 + 5
	var b strings.Builder
	b.WriteString("version: 1\nvars: {flavor: debian}\ngroups:\n  agents:\n    targets:\n")
	for i := range n {
		fmt.Fprintf(&b, "      - {name: a%d.test, address: 127.0.0.1}\n", i)
	}
	p := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := inventory.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	var now, most, dials atomic.Int32
	site, err := Collect(context.Background(), in, Options{Timeout: time.Minute, Dial: func(ctx context.Context, cfg transport.Config) (transport.Conn, error) {
		dials.Add(1)
		c := now.Add(1)
		for m := most.Load(); c > m && !most.CompareAndSwap(m, c); m = most.Load() {
		}
		time.Sleep(20 * time.Millisecond) // a handshake's worth, so the slots fill
		now.Add(-1)
		return nil, errors.New("no SSH here")
	}})
	if err != nil {
		t.Fatal(err)
	}
	if int(dials.Load()) != n || len(site.Hosts) != n {
		t.Errorf("%d dials, %d rows for %d hosts", dials.Load(), len(site.Hosts), n)
	}
	if most.Load() > probeSlots || most.Load() < 2 {
		t.Errorf("%d hosts dialled at once, want 2..%d", most.Load(), probeSlots)
	}
}
