package report

import (
	"slices"
	"sync"
	"time"

	"github.com/troupe/troupe/internal/secret"
)

// HostCounts is one host's tally of step results over a run.
type HostCounts struct {
	Host     string
	Changed  int
	OK       int // Unchanged
	Skipped  int
	Failed   int
	Duration time.Duration // sum of the host's step durations
}

// Failure is one failed host result: the host, the step and why.
type Failure struct {
	Host  string
	Step  string
	Error string // Error, or Reason when the event had no Error
}

// Counter is a Reporter that only tallies HostResult events, so the CLI can
// ask after the run which hosts failed and how many results had each status.
// Hosts are kept in the order they were first announced (RunStart, then
// StepStart, then results). Failure texts are redacted.
type Counter struct {
	red      *secret.Redactor
	mu       sync.Mutex
	order    []string
	hosts    map[string]*HostCounts
	failures []Failure
}

// NewCounter returns an empty Counter; red may be nil.
func NewCounter(red *secret.Redactor) *Counter {
	return &Counter{red: red, hosts: map[string]*HostCounts{}}
}

// Emit records e.
func (c *Counter) Emit(e Event) {
	e = redact(c.red, e)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e.Kind {
	case RunStart, StepStart:
		for _, h := range e.Hosts {
			c.host(h)
		}
	case HostResult:
		hc := c.host(e.Host)
		hc.Duration += e.Duration
		switch e.Status {
		case Changed:
			hc.Changed++
		case Unchanged:
			hc.OK++
		case Skipped:
			hc.Skipped++
		case Failed:
			hc.Failed++
			msg := e.Error
			if msg == "" {
				msg = e.Reason
			}
			c.failures = append(c.failures, Failure{Host: e.Host, Step: e.Step, Error: msg})
		}
	}
}

func (c *Counter) host(name string) *HostCounts {
	hc, ok := c.hosts[name]
	if !ok {
		hc = &HostCounts{Host: name}
		c.hosts[name] = hc
		c.order = append(c.order, name)
	}
	return hc
}

// Close does nothing; a Counter can be queried before and after it.
func (c *Counter) Close() error { return nil }

// Hosts returns every host's counts, in announcement order.
func (c *Counter) Hosts() []HostCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]HostCounts, len(c.order))
	for i, h := range c.order {
		out[i] = *c.hosts[h]
	}
	return out
}

// Total sums all hosts; its Host is "total".
func (c *Counter) Total() HostCounts {
	t := HostCounts{Host: "total"}
	for _, h := range c.Hosts() {
		t.Changed += h.Changed
		t.OK += h.OK
		t.Skipped += h.Skipped
		t.Failed += h.Failed
		t.Duration += h.Duration
	}
	return t
}

// Failures returns the failed results in the order they arrived.
func (c *Counter) Failures() []Failure {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.failures)
}

// FailedHosts returns each host with at least one failed result, once, in
// the order of their first failure.
func (c *Counter) FailedHosts() []string {
	var hosts []string
	for _, f := range c.Failures() {
		if !slices.Contains(hosts, f.Host) {
			hosts = append(hosts, f.Host)
		}
	}
	return hosts
}
