// Package fanout runs one function over many hosts at once, a bounded
// number at a time, and keeps each host's error with it. Every layer may
// use it (runner, status, lab...): it imports nothing of troupe's.
package fanout

import (
	"context"
	"sync"
)

// Each calls fn for every item, at most limit at once (limit < 1: all at
// once), and returns when every call has returned. Once ctx is done no
// call starts: an item not started gets ctx's error. errs[i] is item i's
// error, nil when fn(items[i]) returned nil.
//
// The bound is what keeps a thousand hosts from being a thousand SSH
// handshakes (or sessions) at once; a slot is taken before its goroutine
// starts, so at most limit goroutines exist at a time.
func Each[T any](ctx context.Context, items []T, limit int, fn func(ctx context.Context, item T) error) (errs []error) {
	errs = make([]error, len(items))
	if limit < 1 || limit > len(items) {
		limit = len(items)
	}
	slots := make(chan struct{}, limit)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, item := range items {
		if !take(ctx, slots) {
			errs[i] = ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			errs[i] = fn(ctx, item)
		}()
	}
	return errs
}

// take waits for a free slot and takes it; false when ctx is done first.
// ctx is checked again once a slot is taken: select picks at random among
// ready cases, and a cancelled run must not start one more host.
func take(ctx context.Context, slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	if ctx.Err() != nil {
		<-slots
		return false
	}
	return true
}
