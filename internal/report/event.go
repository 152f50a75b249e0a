// Package report turns runner events into what people and machines read:
// live per-host lines and a summary table for humans (lipgloss; plain text
// when not a terminal), NDJSON for machines, and a debug log file that is
// always written. Secrets are masked before anything leaves this package.
package report

import "time"

// Status is a host's outcome for one step. The three outcomes stay distinct.
type Status string

const (
	Changed   Status = "changed"
	Unchanged Status = "ok"
	Skipped   Status = "skipped"
	Failed    Status = "failed"
)

// Kind names an event.
type Kind string

const (
	RunStart   Kind = "run_start"   // Plan, Hosts
	StepStart  Kind = "step_start"  // Step, Title, Hosts (the step's targets)
	HostLine   Kind = "host_line"   // Step, Host, Stream (stdout|stderr), Text: one line of live output
	WouldRun   Kind = "would_run"   // Step, Host, Text: a command --noop did not run
	WouldWrite Kind = "would_write" // Step, Host, Text: a file path; Diff: unified diff
	HostResult Kind = "host_result" // Step, Host, Status, Reason, Error, Stderr, Duration
	StepEnd    Kind = "step_end"    // Step, Duration
	Warning    Kind = "warning"     // Text (and Host when about one host)
	RunEnd     Kind = "run_end"     // Status (failed when any host failed), Duration, Error
	// Debug is a diagnostic line for the debug log only (Step, Host, Text);
	// the human and JSON reporters drop it. See Log.Logf.
	Debug Kind = "debug"
)

// Event is one thing that happened during a run.
type Event struct {
	Time     time.Time     `json:"time"`
	Kind     Kind          `json:"event"`
	Plan     string        `json:"plan,omitempty"`
	Step     string        `json:"step,omitempty"`
	Title    string        `json:"title,omitempty"`
	Host     string        `json:"host,omitempty"`
	Hosts    []string      `json:"hosts,omitempty"`
	Stream   string        `json:"stream,omitempty"`
	Text     string        `json:"text,omitempty"`
	Diff     string        `json:"diff,omitempty"`
	Status   Status        `json:"status,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Error    string        `json:"error,omitempty"`
	Stderr   string        `json:"stderr,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
}

// Reporter receives events; implementations must be safe for concurrent use.
type Reporter interface {
	Emit(Event)
	// Close flushes and, for humans, prints the final summary.
	Close() error
}
