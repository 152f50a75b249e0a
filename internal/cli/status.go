package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/status"
)

// StatusCmd reads the site's state: read-only, no lock, no journal.
type StatusCmd struct {
	Inventory   string        `short:"i" help:"Inventory file ($TROUPE_INVENTORY, default inventory/hosts.yaml)." placeholder:"FILE"`
	Format      string        `enum:"human,json,prometheus" default:"human" help:"human (a table), json (the same data; with --watch one object a line), or prometheus (gauges in the text exposition format, for node_exporter's textfile collector)."`
	Wide        bool          `help:"Every column and every detail, several lines a host (the default is one line a host, within 120 columns)."`
	Watch       bool          `short:"w" help:"Read again every --interval: redrawn in place on a terminal, printed one after another otherwise."`
	Interval    time.Duration `default:"5s" help:"Time between readings with --watch."`
	Horizon     int           `default:"90" help:"Days: certificates and CRLs ending sooner are warnings (default 90)." placeholder:"DAYS"`
	Timeout     time.Duration `default:"10s" help:"Per host: connecting plus every probe; a slower host is shown as timeout."`
	AskSudoPass bool          `short:"K" help:"Prompt once for the sudo password (fed to sudo on stdin, never in argv)."`
}

func (c *StatusCmd) Run(g *Globals) error {
	if c.Horizon < 0 || c.Timeout <= 0 || (c.Watch && c.Interval <= 0) {
		return &ExitError{Code: ExitInvalid, Err: errors.New("--horizon must be 0 or more days, --timeout and --interval more than 0")}
	}
	inv, err := loadInventory(c.Inventory)
	if err != nil {
		return err
	}
	if _, err := status.Specs(inv); err != nil {
		return &ExitError{Code: ExitInvalid, Err: err}
	}
	red := &secret.Redactor{}
	if err := resolveSecrets(inv, red, c.AskSudoPass); err != nil {
		return &ExitError{Code: ExitInvalid, Err: err}
	}
	opts := status.Options{Timeout: c.Timeout, Horizon: time.Duration(c.Horizon) * 24 * time.Hour}
	tty := report.IsTerminal(os.Stdout)
	show := func(site *status.Site) error {
		var out string
		if c.Format == "json" {
			var b []byte
			if c.Watch {
				b, err = json.Marshal(site)
			} else {
				b, err = json.MarshalIndent(site, "", "  ")
			}
			if err != nil {
				return err
			}
			out = string(b) + "\n"
		} else if c.Format == "prometheus" {
			out = status.Prometheus(site)
		} else {
			out = status.Table(site, status.TableOptions{Renderer: report.NewRenderer(os.Stdout, g.Color), Unicode: tty, Wide: c.Wide})
		}
		out = red.String(out)
		if c.Watch && tty && c.Format == "human" {
			// home, clear, then the new reading: redrawn in place
			out = "\x1b[H\x1b[2J" + fmt.Sprintf("every %s, Ctrl-C to stop · %s\n", c.Interval, site.Time.Format(time.RFC3339)) + out
		}
		_, err := io.WriteString(os.Stdout, out)
		return err
	}
	if !c.Watch {
		site, err := status.Collect(context.Background(), inv, opts)
		if err != nil {
			return &ExitError{Code: ExitInvalid, Err: err}
		}
		if err := show(site); err != nil {
			return err
		}
		return verdict(site)
	}
	if !tty && c.Format == "human" {
		fmt.Fprintln(os.Stderr, "troupe: --watch: stdout is not a terminal, so each reading is printed after the last (no redraw)")
	}
	ctx, stop := interruptible()
	defer stop()
	var last *status.Site
	for {
		site, err := status.Collect(ctx, inv, opts)
		if err != nil {
			return &ExitError{Code: ExitInvalid, Err: err}
		}
		if ctx.Err() != nil {
			break // the reading was cut short by Ctrl-C: keep the last whole one
		}
		last = site
		if err := show(site); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.Interval):
			continue
		}
		break
	}
	if last == nil {
		return &ExitError{Code: ExitInterrupted, Err: errors.New("interrupted before the first reading")}
	}
	return verdict(last)
}

// verdict is the exit code of a reading: 0 healthy, 1 anything bad (the
// reasons are listed under the table, or in the JSON's problems).
func verdict(site *status.Site) error {
	if site.Healthy {
		return nil
	}
	return &ExitError{Code: ExitFailed, Err: errors.New("")}
}
