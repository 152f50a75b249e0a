package status

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// MaxWidth is what every line of the default (narrow) view fits in, in
// terminal cells: a 120-column terminal shows it without wrapping.
const MaxWidth = 120

// narrowColumn is a column of the narrow view: its header, the most cells
// a value takes (longer ones are cut with "…"; the wide view and the JSON
// have them whole), and the value.
type narrowColumn struct {
	head  string
	max   int
	value func(h *Host) (string, Level)
}

// narrowColumns sum to 102 cells plus 2 between each: 118 at most.
var narrowColumns = []narrowColumn{
	{"HOST", 24, func(h *Host) (string, Level) { return h.Name, h.Level }},
	{"ROLES", 12, func(h *Host) (string, Level) { return orDash(strings.Join(h.Roles, ",")), OK }},
	{"HEALTH", 6, func(h *Host) (string, Level) {
		if h.Level == Bad {
			return "BAD", Bad
		}
		return h.Level.String(), h.Level
	}},
	{"SERVICES", 8, narrowServices},
	{"SERVER", 12, narrowServer},
	{"HAPROXY", 12, narrowHAProxy},
	{"CERT", 8, narrowCert},
	{"CODE", 10, narrowCode},
	{"PUPPETDB", 12, narrowPuppetDB},
}

// narrow draws one line a host, the columns separated by two spaces (no
// borders), then what the wide view prints under its table, wrapped.
func narrow(site *Site, r *lipgloss.Renderer, styles map[Level]lipgloss.Style) string {
	cells := make([][]string, len(site.Hosts))
	levels := make([][]Level, len(site.Hosts))
	widths := make([]int, len(narrowColumns))
	for i, c := range narrowColumns {
		widths[i] = lipgloss.Width(c.head)
	}
	for k, h := range site.Hosts {
		unread := h.Error != "" && len(h.secs) == 0
		for i, c := range narrowColumns {
			v, lvl := c.value(h)
			if unread && i > 2 {
				v, lvl = "?", Bad
			}
			v = ansi.Truncate(v, c.max, "…")
			cells[k] = append(cells[k], v)
			levels[k] = append(levels[k], lvl)
			widths[i] = max(widths[i], lipgloss.Width(v))
		}
	}
	var b strings.Builder
	line := func(vs []string, style func(i int) lipgloss.Style) {
		var l strings.Builder
		for i, v := range vs {
			if i > 0 {
				l.WriteString("  ")
			}
			l.WriteString(style(i).Render(v))
			if i < len(vs)-1 {
				l.WriteString(strings.Repeat(" ", widths[i]-lipgloss.Width(v)))
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	heads := make([]string, len(narrowColumns))
	for i, c := range narrowColumns {
		heads[i] = c.head
	}
	bold := r.NewStyle().Bold(true)
	line(heads, func(int) lipgloss.Style { return bold })
	plain := r.NewStyle()
	for k := range site.Hosts {
		line(cells[k], func(i int) lipgloss.Style {
			if lvl := levels[k][i]; lvl > OK || i == 0 {
				return styles[lvl]
			}
			return plain
		})
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func narrowServices(h *Host) (string, Level) {
	if len(h.Services) == 0 {
		return "-", OK
	}
	up, lvl := 0, OK
	for _, s := range h.Services {
		if s.State == "active" {
			up++
		}
		lvl = max(lvl, s.Level)
	}
	return fmt.Sprintf("%d/%d up", up, len(h.Services)), lvl
}

func narrowServer(h *Host) (string, Level) {
	s := h.Server
	switch {
	case s == nil && h.Replica != nil:
		return replicaText(h), h.Replica.Level
	case s == nil:
		return "-", OK
	case s.Error != "":
		return strings.TrimPrefix(s.Error, "connection "), s.Level // refused, reset
	}
	v := s.Simple
	if s.JRuby != nil {
		v += fmt.Sprintf(" %d/%d", s.JRuby.Free, s.JRuby.Total)
	}
	return v, max(s.Level, s.JRubyLevel)
}

func narrowHAProxy(h *Host) (string, Level) {
	if p := h.Pool; p != nil {
		if p.Error != "" {
			return p.Error, p.Level
		}
		up := 0
		for _, s := range p.Servers {
			if s.State == "UP" {
				up++
			}
		}
		v := fmt.Sprintf("%d/%d UP", up, len(p.Servers))
		if p.HoldsVIP {
			v += " +VIP"
		}
		return v, p.Level
	}
	if len(h.HAProxy) == 0 {
		return "-", OK
	}
	var states []string
	lvl := OK
	for _, v := range h.HAProxy {
		states = append(states, v.State)
		lvl = max(lvl, v.Level)
	}
	return strings.Join(states, ","), lvl
}

// narrowCert is the days left of the earliest of the host's certificate
// and, on the CA, its CA certificates and CRLs.
func narrowCert(h *Host) (string, Level) {
	days, lvl, have := 0, OK, false
	early := func(d int) {
		if !have || d < days {
			days, have = d, true
		}
	}
	if c := h.Cert; c != nil {
		switch {
		case c.Revoked:
			return "REVOKED", Bad
		case c.Error != "":
			return "?", c.Level
		}
		early(c.DaysLeft)
		lvl = c.Level
	}
	if ca := h.CA; ca != nil {
		for _, xs := range [][]Expiry{ca.Certs, ca.CRLs} {
			for _, x := range xs {
				early(x.DaysLeft)
			}
		}
		lvl = max(lvl, ca.Level)
		if ca.Error != "" {
			return "?", lvl
		}
	}
	if !have {
		return "-", lvl
	}
	if days < 0 {
		return "expired", lvl
	}
	return fmt.Sprintf("%dd", days), lvl
}

func narrowCode(h *Host) (string, Level) {
	c := h.Code
	switch {
	case c == nil:
		return "-", OK
	case c.Error != "":
		return "?", c.Level
	}
	drift := 0
	for _, e := range c.Envs {
		if e.Drift != "" {
			drift++
		}
	}
	if drift > 0 {
		return fmt.Sprintf("DRIFT %d", drift), c.Level
	}
	return fmt.Sprintf("%d envs", len(c.Envs)), c.Level
}

func narrowPuppetDB(h *Host) (string, Level) {
	p := h.PuppetDB
	switch {
	case p == nil:
		return "-", OK
	case p.State == "":
		return p.Error, p.Level
	}
	q := "?"
	if p.QueueDepth != nil {
		q = fmt.Sprint(*p.QueueDepth)
	}
	return p.State + " q" + q, p.Level
}

// wrap cuts s into lines of at most width cells, at spaces where it can,
// the lines after the first indented by indent.
func wrap(s string, width int, indent string) string {
	if lipgloss.Width(s) <= width {
		return s
	}
	w := strings.TrimRight(ansi.Wrap(s, width-lipgloss.Width(indent), ""), "\n")
	return strings.ReplaceAll(w, "\n", "\n"+indent)
}
