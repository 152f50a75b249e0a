package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// No more than limit calls run at once, and every item is called once.
func TestEachRespectsTheBound(t *testing.T) {
	for _, limit := range []int{1, 3, 64, 0} {
		items := make([]int, 50)
		for i := range items {
			items[i] = i
		}
		var running, most atomic.Int32
		var mu sync.Mutex
		seen := map[int]int{}
		errs := Each(context.Background(), items, limit, func(_ context.Context, i int) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			mu.Lock()
			seen[i]++
			mu.Unlock()
			return nil
		})
		want := int32(limit)
		if limit < 1 || limit > len(items) {
			want = int32(len(items))
		}
		if got := most.Load(); got > want || got < 1 {
			t.Errorf("limit %d: %d calls at once", limit, got)
		}
		if limit == 1 && most.Load() != 1 {
			t.Errorf("limit 1: %d at once", most.Load())
		}
		if len(errs) != len(items) || len(seen) != len(items) {
			t.Errorf("limit %d: %d errors, %d items called, want %d", limit, len(errs), len(seen), len(items))
		}
		for i, n := range seen {
			if n != 1 {
				t.Errorf("limit %d: item %d called %d times", limit, i, n)
			}
		}
	}
}

// Every error stays with its item, whatever order the calls end in.
func TestEachKeepsEveryErrorWithItsItem(t *testing.T) {
	hosts := []string{"h1", "h2", "h3", "h4", "h5", "h6"}
	errs := Each(context.Background(), hosts, 2, func(_ context.Context, h string) error {
		if h == "h2" || h == "h5" || h == "h6" {
			time.Sleep(time.Duration(len(h)) * time.Millisecond)
			return fmt.Errorf("%s: refused", h)
		}
		return nil
	})
	for i, h := range hosts {
		bad := h == "h2" || h == "h5" || h == "h6"
		switch {
		case bad && (errs[i] == nil || errs[i].Error() != h+": refused"):
			t.Errorf("%s: error %v", h, errs[i])
		case !bad && errs[i] != nil:
			t.Errorf("%s: unexpected error %v", h, errs[i])
		}
	}
	if empty := Each(context.Background(), []string{}, 4, func(context.Context, string) error { return nil }); len(empty) != 0 {
		t.Errorf("no items: %v", empty)
	}
}

// Once ctx is cancelled no new call starts; the calls under way finish,
// and each item not started has ctx's error.
func TestEachStopsStartingOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	items := make([]int, 20)
	for i := range items {
		items[i] = i
	}
	var started atomic.Int32
	release := make(chan struct{})
	done := make(chan []error)
	go func() {
		done <- Each(ctx, items, 2, func(ctx context.Context, i int) error {
			started.Add(1)
			<-release
			return nil // a call under way finishes its work
		})
	}()
	for started.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	close(release)
	errs := <-done
	if n := started.Load(); n != 2 {
		t.Errorf("%d calls started, want the 2 under way when cancelled", n)
	}
	for i, err := range errs {
		if i < 2 && err != nil {
			t.Errorf("item %d (under way): %v", i, err)
		}
		if i >= 2 && !errors.Is(err, context.Canceled) {
			t.Errorf("item %d (not started): %v, want context.Canceled", i, err)
		}
	}
	// cancelled before the first: nothing starts
	errs = Each(ctx, items, 0, func(context.Context, int) error { started.Add(1); return nil })
	if started.Load() != 2 || !errors.Is(errs[0], context.Canceled) {
		t.Errorf("a cancelled context started calls (%d) or gave %v", started.Load(), errs[0])
	}
}
