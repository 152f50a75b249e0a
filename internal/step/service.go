package step

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/troupe/troupe/internal/render"
)

// Service drives a systemd unit through systemctl.
type Service struct {
	Name string `yaml:"name"`
	// Part names the unit by the part of the site it runs (server, db,
	// agent): the host's flavor says which unit that is.
	Part    string `yaml:"part"`
	State   string `yaml:"state"`   // started | stopped | restarted | reloaded
	Enabled *bool  `yaml:"enabled"` // nil leaves it as it is
}

func (s *Service) Title() string {
	name := s.Name
	if s.Part != "" {
		name = "the " + s.Part + "'s"
	}
	return fmt.Sprintf("Service %s %s", name, s.State)
}

// serviceParts are the parts a service can be named by.
var serviceParts = []string{"server", "db", "agent"}

func (s *Service) Validate() error {
	switch {
	case s.Name == "" && s.Part == "":
		return errors.New("name is required (or part: server, db or agent)")
	case s.Name != "" && s.Part != "":
		return errors.New("name or part, not both")
	case s.Part != "" && !slices.Contains(serviceParts, s.Part):
		return fmt.Errorf("part %q: want server, db or agent", s.Part)
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
	name, err := s.unit(x)
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
		state := strings.TrimSpace(res.Stdout)
		active := state == "active"
		// A unit on its way up (activating: a JVM starting after a boot)
		// or reloading runs as much as an active one: stopped means
		// inactive or failed, nothing else (a fence must not leave a CA
		// starting behind it).
		stopped := state == "inactive" || state == "failed"
		verb := ""
		switch {
		case s.State == "started" && !active:
			verb = "start"
		case s.State == "stopped" && !stopped:
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
				if verb != "stop" {
					err = withJournal(ctx, x, name, err)
				}
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

// journalLines is how much of a unit's journal a failed start shows.
const journalLines = 15

// withJournal adds the unit's last journal lines to the error of a failed
// start, restart or reload: systemd's own message only says where to look
// ("See journalctl -xeu ..."), and by the time an operator looks, a
// later run or a restart may have buried the cause (a JVM that died while
// loading says why only there).
func withJournal(ctx context.Context, x *Exec, unit string, err error) error {
	res, jerr := x.Probe(ctx, fmt.Sprintf("journalctl -u %s -n %d --no-pager -o short-iso 2>/dev/null", render.ShellQuote(unit), journalLines))
	tail := strings.TrimSpace(res.Stdout)
	if jerr != nil || res.ExitCode != 0 || tail == "" {
		return err
	}
	if len(tail) > 3000 {
		tail = "…" + tail[len(tail)-3000:]
	}
	return fmt.Errorf("%w\n%s's journal, last %d lines:\n%s", err, unit, journalLines, tail)
}

// unit is the systemd unit: the name, or the flavor's unit for the part.
func (s *Service) unit(x *Exec) (string, error) {
	if s.Part == "" {
		return x.Render(s.Name)
	}
	if x.Flavor == nil {
		return "", fmt.Errorf("part %s needs the host's flavor (vars.flavor) to name its unit", s.Part)
	}
	return map[string]string{"server": x.Flavor.Services.Server, "db": x.Flavor.Services.DB, "agent": x.Flavor.Services.Agent}[s.Part], nil
}
