package step

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/troupe/troupe/internal/render"
)

// Service drives a systemd unit through systemctl.
type Service struct {
	Name    string `yaml:"name"`
	State   string `yaml:"state"`   // started | stopped | restarted | reloaded
	Enabled *bool  `yaml:"enabled"` // nil leaves it as it is
}

func (s *Service) Title() string { return fmt.Sprintf("Service %s %s", s.Name, s.State) }

func (s *Service) Validate() error {
	if s.Name == "" {
		return errors.New("name is required")
	}
	switch s.State {
	case "", "started", "stopped", "restarted", "reloaded":
	default:
		return fmt.Errorf("state %q: want started, stopped, restarted or reloaded", s.State)
	}
	if s.State == "" && s.Enabled == nil {
		return errors.New("set state, enabled or both")
	}
	return nil
}

func (s *Service) Run(ctx context.Context, x *Exec) (Result, error) {
	name, err := x.Render(s.Name)
	if err != nil {
		return Result{}, err
	}
	q := render.ShellQuote(name)
	var did []string
	if s.Enabled != nil {
		res, err := x.Probe(ctx, "systemctl is-enabled "+q+" 2>/dev/null")
		if err != nil {
			return Result{}, err
		}
		enabled := strings.TrimSpace(res.Stdout) == "enabled"
		if enabled != *s.Enabled {
			verb := map[bool]string{true: "enable", false: "disable"}[*s.Enabled]
			if _, err := x.MustChange(ctx, "systemctl "+verb+" "+q, ""); err != nil {
				return Result{}, err
			}
			did = append(did, verb+"d")
		}
	}
	if s.State != "" {
		res, err := x.Probe(ctx, "systemctl is-active "+q+" 2>/dev/null")
		if err != nil {
			return Result{}, err
		}
		active := strings.TrimSpace(res.Stdout) == "active"
		verb := ""
		switch {
		case s.State == "started" && !active:
			verb = "start"
		case s.State == "stopped" && active:
			verb = "stop"
		case s.State == "restarted":
			verb = "restart"
		case s.State == "reloaded" && active:
			verb = "reload"
		case s.State == "reloaded":
			verb = "start"
		}
		if verb != "" {
			if _, err := x.MustChange(ctx, "systemctl "+verb+" "+q, ""); err != nil {
				return Result{}, err
			}
			did = append(did, verb)
		}
	}
	if len(did) == 0 {
		var is []string
		if s.Enabled != nil {
			is = append(is, map[bool]string{true: "enabled", false: "disabled"}[*s.Enabled])
		}
		if s.State != "" {
			is = append(is, s.State)
		}
		return Result{Msg: name + " already " + strings.Join(is, ", ")}, nil
	}
	return Result{Changed: true, Msg: name + ": " + strings.Join(did, ", ")}, nil
}
