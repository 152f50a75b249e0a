package step

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
)

// Message prints a line per host.
type Message struct {
	Text string `yaml:"text"`
}

func (m *Message) SetString(s string) { m.Text = s }
func (m *Message) ReadOnly() bool     { return true }
func (m *Message) Title() string      { return "Message" }

func (m *Message) Run(_ context.Context, x *Exec) (Result, error) {
	text, err := x.Render(m.Text)
	if err != nil {
		return Result{}, err
	}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		x.Emit(report.Event{Kind: report.HostLine, Stream: "stdout", Text: l})
	}
	return Result{Msg: text}, nil
}

// Assert fails the host unless every condition renders "true".
type Assert struct {
	That []string `yaml:"that"`
	Msg  string   `yaml:"msg"`
}

func (a *Assert) ReadOnly() bool { return true }
func (a *Assert) Title() string  { return "Check " + strings.Join(a.That, ", ") }

func (a *Assert) Validate() error {
	if len(a.That) == 0 {
		return errors.New("that: at least one condition is required")
	}
	return nil
}

func (a *Assert) Run(_ context.Context, x *Exec) (Result, error) {
	for _, c := range a.That {
		ok, err := render.Bool(c, x.Data)
		if err != nil {
			return Result{}, err
		}
		if !ok {
			msg, err := x.Render(a.Msg)
			if err != nil {
				return Result{}, err
			}
			if msg == "" {
				msg = "assertion failed: " + c
			}
			return Result{}, errors.New(msg)
		}
	}
	return Result{Msg: "all conditions hold"}, nil
}

// Fail fails the host with a message (usually under `when`).
type Fail struct {
	Msg string `yaml:"msg"`
}

func (f *Fail) SetString(s string) { f.Msg = s }
func (f *Fail) ReadOnly() bool     { return true }
func (f *Fail) Title() string      { return "Fail" }

func (f *Fail) Run(_ context.Context, x *Exec) (Result, error) {
	msg, err := x.Render(f.Msg)
	if err != nil {
		return Result{}, err
	}
	return Result{}, fmt.Errorf("%s", msg)
}
