package webhook

import "time"

// deliveries remembers the delivery ids of accepted events for a window,
// at most max of them (the oldest go first), so a replayed request is
// refused without memory growing with the traffic. Only signed requests
// are remembered: an unauthenticated sender cannot fill it.
//
// A delivery header is not covered by the signature, so a replay may come
// with a fresh id or none; Server.enqueue's (environment, commit) check is
// what stops those from queuing a deploy.
type deliveries struct {
	window time.Duration
	max    int
	at     map[string]time.Time
	order  []string // oldest first
}

func newDeliveries(window time.Duration, max int) *deliveries {
	return &deliveries{window: window, max: max, at: map[string]time.Time{}}
}

// seen says whether any of ids was remembered within the window.
func (d *deliveries) seen(ids []string, now time.Time) bool {
	d.expire(now)
	for _, id := range ids {
		if _, ok := d.at[id]; ok {
			return true
		}
	}
	return false
}

// remember keeps ids, making room by forgetting the oldest.
func (d *deliveries) remember(ids []string, now time.Time) {
	d.expire(now)
	for _, id := range ids {
		if _, ok := d.at[id]; ok {
			continue
		}
		for len(d.order) >= d.max {
			d.forgetOldest()
		}
		d.at[id] = now
		d.order = append(d.order, id)
	}
}

func (d *deliveries) expire(now time.Time) {
	for len(d.order) > 0 && now.Sub(d.at[d.order[0]]) > d.window {
		d.forgetOldest()
	}
}

func (d *deliveries) forgetOldest() {
	delete(d.at, d.order[0])
	d.order[0] = ""
	d.order = d.order[1:]
}
