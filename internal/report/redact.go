package report

import (
	"time"

	"github.com/troupe/troupe/internal/secret"
)

// redact returns a copy of e with every free-text field masked by red and
// cleaned (Clean: no escape codes or controls but tab and newline) for
// every reporter alike, the JSON and the debug log too, whose readers print
// them: Plan, Step, Title, Host, Hosts, Stream, Text, Diff, Reason, Error,
// Stderr.
// Kind and Status are constants of this package, not data, and stay as they
// are. Only whole occurrences inside one field are caught: a secret split
// across two HostLine events (or two fields) is not recognised.
func redact(red *secret.Redactor, e Event) Event {
	// cleaned first: an escape code inside a secret must not hide it from red
	s := func(v string) string { return red.String(Clean(v)) }
	e.Plan = s(e.Plan)
	e.Step = s(e.Step)
	e.Title = s(e.Title)
	e.Host = s(e.Host)
	e.Stream = s(e.Stream)
	e.Text = s(e.Text)
	e.Diff = s(e.Diff)
	e.Reason = s(e.Reason)
	e.Error = s(e.Error)
	e.Stderr = s(e.Stderr)
	if e.Hosts != nil {
		hosts := make([]string, len(e.Hosts))
		for i, h := range e.Hosts {
			hosts[i] = s(h)
		}
		e.Hosts = hosts // a copy: the caller's slice is never written
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	return e
}
