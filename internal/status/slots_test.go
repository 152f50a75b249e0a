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
	in := agents(t, n)
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

// An interrupted reading starts no host after the interruption: the hosts
// under way end, the others are rows that could not be read.
func TestCollectInterruptedStartsNoMoreHosts(t *testing.T) {
	const n = probeSlots + 20
	in := agents(t, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var dials atomic.Int32
	site, err := Collect(ctx, in, Options{Timeout: time.Minute, Dial: func(ctx context.Context, cfg transport.Config) (transport.Conn, error) {
		if dials.Add(1) == probeSlots {
			cancel() // every slot is taken: the interruption comes now
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := dials.Load(); got != probeSlots {
		t.Errorf("%d hosts dialled, want the %d under way when interrupted", got, probeSlots)
	}
	if len(site.Hosts) != n {
		t.Fatalf("%d rows for %d hosts", len(site.Hosts), n)
	}
	for _, h := range site.Hosts {
		if h.Error != "unreachable: timeout" {
			t.Errorf("%s: %q", h.Name, h.Error)
		}
	}
}

// agents is an inventory of n agents, all at 127.0.0.1.
func agents(t *testing.T, n int) *inventory.Inventory {
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
	return in
}
