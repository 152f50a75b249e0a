package status

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"

	"github.com/troupe/troupe/internal/report"
)

// Columns of the table, in order.
var Columns = []string{"HOST", "ROLES", "PACKAGES", "SERVICES", "STATUS", "HAPROXY", "JRUBY", "CERT", "CODE", "PUPPETDB"}

// line is one line of a cell with its level.
type line struct {
	text  string
	level Level
}

type cell []line

func one(text string, lvl Level) cell { return cell{{text, lvl}} }

// na is a cell that does not apply to the host's roles.
var na = one("-", OK)

// TableOptions say how the table is drawn.
type TableOptions struct {
	Renderer *lipgloss.Renderer // colours (report.NewRenderer honours --color)
	Unicode  bool               // rounded borders (a terminal); ASCII otherwise
	// Wide draws every column, a cell's every line, in a bordered table
	// (about 230 columns for a site of 8 hosts). The default is one line a
	// host, every line of the output within MaxWidth cells.
	Wide bool
}

// Table draws the site: the hosts (narrow or wide), the control
// repository's branches, the problems and a verdict line.
func Table(site *Site, o TableOptions) string {
	r := o.Renderer
	if r == nil {
		r = lipgloss.NewRenderer(nil)
	}
	styles := map[Level]lipgloss.Style{
		OK:   r.NewStyle().Foreground(lipgloss.Color("34")),
		Warn: r.NewStyle().Foreground(lipgloss.Color("214")),
		Bad:  r.NewStyle().Foreground(lipgloss.Color("196")).Bold(true),
	}
	var b strings.Builder
	fit := func(s, indent string) string { return s }
	if o.Wide {
		b.WriteString(wide(site, o, r, styles))
	} else {
		b.WriteString(narrow(site, r, styles))
		fit = func(s, indent string) string { return wrap(s, MaxWidth, indent) }
	}
	if c := site.Control; c != nil {
		if c.Error != "" {
			fmt.Fprintf(&b, "%s\n", fit("control repository: "+styles[Warn].Render(report.Clean(c.Error)), "  "))
		} else {
			var envs []string
			for _, env := range slices.Sorted(maps.Keys(c.Branches)) {
				envs = append(envs, env+" "+short(c.Branches[env]))
			}
			fmt.Fprintf(&b, "%s\n", fit(fmt.Sprintf("control repository %s (from %s): %s", report.Clean(c.Remote), c.From, strings.Join(envs, ", ")), "  "))
		}
	}
	bad, warn := 0, 0
	for _, p := range site.Problems {
		if p.Level == Bad {
			bad++
		} else {
			warn++
		}
		fmt.Fprintf(&b, "%s\n", fit(fmt.Sprintf("  %s %s %s: %s", styles[p.Level].Render(fmt.Sprintf("%-4s", p.Level)), p.Host, p.What, report.Clean(p.Text)), "       "))
	}
	verdict := styles[OK].Bold(true).Render("healthy")
	if site.Level == Bad {
		verdict = styles[Bad].Render("UNHEALTHY")
	}
	fmt.Fprintf(&b, "%s: %s, %s · %s in %s\n", verdict, plural(bad, "problem"), plural(warn, "warning"),
		plural(len(site.Hosts), "host"), (time.Duration(site.WallMS) * time.Millisecond).Round(10*time.Millisecond))
	return b.String()
}

// wide is the bordered table of every column.
func wide(site *Site, o TableOptions, r *lipgloss.Renderer, styles map[Level]lipgloss.Style) string {
	plain := r.NewStyle()
	rows := make([][]string, 0, len(site.Hosts))
	for _, h := range site.Hosts {
		cells := hostCells(h)
		row := make([]string, len(cells))
		for i, c := range cells {
			ls := make([]string, len(c))
			for k, l := range c {
				st := styles[l.level]
				if l.level == OK && i > 0 {
					st = plain // only problems and the host name are coloured
				}
				ls[k] = st.Render(cut(report.Clean(l.text), 48))
			}
			row[i] = strings.Join(ls, "\n")
		}
		rows = append(rows, row)
	}
	border := lipgloss.ASCIIBorder()
	if o.Unicode {
		border = lipgloss.RoundedBorder()
	}
	t := table.New().Border(border).BorderStyle(r.NewStyle()).BorderRow(true).
		Headers(Columns...).Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			st := r.NewStyle().Padding(0, 1)
			if row == table.HeaderRow {
				st = st.Bold(true)
			}
			return st
		})
	return t.Render() + "\n"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// hostCells are a row's cells, in Columns order.
func hostCells(h *Host) []cell {
	name := one(h.Name, h.Level)
	if h.Error != "" {
		name = append(name, line{h.Error, Bad})
	}
	roles := strings.Join(h.Roles, ",")
	if roles == "" {
		roles = "-"
	}
	cells := []cell{name, one(roles, OK), packagesCell(h), servicesCell(h), statusCell(h), haproxyCell(h), jrubyCell(h),
		certCell(h), codeCell(h), puppetDBCell(h)}
	if h.Error != "" && len(h.secs) == 0 {
		for i := 2; i < len(cells); i++ {
			cells[i] = one("?", Bad)
		}
	}
	return cells
}

func packagesCell(h *Host) cell {
	var c cell
	for _, p := range h.Packages {
		v := p.Version
		if v == "" {
			v = "MISSING"
		}
		c = append(c, line{p.Role + " " + v, p.Level})
	}
	if len(c) == 0 {
		if len(h.spec.packages()) > 0 {
			return one("?", Bad)
		}
		return na
	}
	return c
}

func servicesCell(h *Host) cell {
	var c cell
	for _, s := range h.Services {
		c = append(c, line{s.Name + " " + s.State, s.Level})
	}
	if len(c) == 0 {
		return na
	}
	return c
}

func statusCell(h *Host) cell {
	s := h.Server
	var c cell
	switch {
	case s == nil:
	case s.Error != "":
		c = one(s.Error, s.Level)
	default:
		c = one(s.Simple, s.Level)
		for _, st := range s.NotRunning {
			c = append(c, line{st.Name + " " + st.State, Bad})
		}
	}
	if r := h.Replica; r != nil {
		c = append(c, line{replicaText(h), r.Level})
	}
	if len(c) == 0 {
		return na
	}
	return c
}

// replicaText is the standby CA's copy in a few words: on the standby, its
// snapshot's serial; on the CA, "standby in sync" or how far behind.
func replicaText(h *Host) string {
	r := h.Replica
	switch {
	case r.State == "fenced":
		return "fenced (ca-failover)"
	case h.spec.has(RoleStandby) && r.State == "active":
		return "active CA (ca-failover)"
	case r.Error != "":
		return "standby: " + r.Error
	case h.spec.has(RoleStandby) && r.serving():
		return "standby, puppetserver " + r.Server
	case h.spec.has(RoleStandby):
		return "standby " + r.Serial
	case r.InSync:
		return "standby in sync"
	}
	return fmt.Sprintf("standby %ds behind", r.Lag)
}

func haproxyCell(h *Host) cell {
	if p := h.Pool; p != nil {
		if p.Error != "" {
			return one(p.Error, p.Level)
		}
		up := 0
		for _, s := range p.Servers {
			if s.State == "UP" {
				up++
			}
		}
		c := cell{line{fmt.Sprintf("%d/%d servers UP", up, len(p.Servers)), p.Level}}
		switch {
		case p.VIP == "":
		case p.VIPError != "":
			c = append(c, line{"VIP " + p.VIP + " ?", p.Level})
		case p.HoldsVIP:
			c = append(c, line{"holds VIP " + p.VIP, p.Level})
		default:
			c = append(c, line{"standby for " + p.VIP, p.Level})
		}
		return c
	}
	if len(h.HAProxy) == 0 {
		return na
	}
	var c cell
	for _, v := range h.HAProxy {
		t := fmt.Sprintf("%s %s %d sess", shortName(v.LB), v.State, v.Sessions)
		if v.Error != "" {
			t = shortName(v.LB) + " " + v.State + " (" + v.Error + ")"
		}
		c = append(c, line{t, v.Level})
	}
	return c
}

func jrubyCell(h *Host) cell {
	s := h.Server
	switch {
	case s == nil:
		return na
	case s.JRuby != nil:
		return one(fmt.Sprintf("%d/%d free", s.JRuby.Free, s.JRuby.Total), s.JRubyLevel)
	case s.Error != "":
		return one("?", s.Level)
	}
	return one(s.JRubyError, s.JRubyLevel)
}

func certCell(h *Host) cell {
	var c cell
	if ct := h.Cert; ct != nil {
		if ct.Error != "" {
			c = append(c, line{ct.Error, ct.Level})
		} else {
			if ct.Revoked {
				c = append(c, line{"REVOKED", Bad})
			}
			c = append(c, line{fmt.Sprintf("%s (%dd)", ct.NotAfter.Format(time.DateOnly), ct.DaysLeft), ct.Level})
			for _, s := range ct.SANs {
				c = append(c, line{s, OK})
			}
		}
	}
	if ca := h.CA; ca != nil {
		if ca.Error != "" {
			c = append(c, line{ca.Error, ca.Level})
		}
		for _, x := range []struct {
			label string
			xs    []Expiry
		}{{"CA", ca.Certs}, {"CRL", ca.CRLs}} {
			if e, ok := earliest(x.xs); ok {
				c = append(c, line{fmt.Sprintf("%s %s (%dd)", x.label, e.Time.Format(time.DateOnly), e.DaysLeft), ca.Level})
			}
		}
	}
	if len(c) == 0 {
		return na
	}
	return c
}

func earliest(xs []Expiry) (Expiry, bool) {
	if len(xs) == 0 {
		return Expiry{}, false
	}
	s := append([]Expiry{}, xs...)
	sort.Slice(s, func(i, j int) bool { return s[i].Time.Before(s[j].Time) })
	return s[0], true
}

func codeCell(h *Host) cell {
	c := h.Code
	switch {
	case c == nil:
		return na
	case c.Error != "":
		return one(c.Error, c.Level)
	}
	var out cell
	for _, e := range c.Envs {
		switch {
		case e.Drift != "":
			sha := short(e.Commit)
			if sha == "" {
				sha = "none"
			}
			lvl := Bad
			if e.Drift == "stale" {
				lvl = Warn
			}
			out = append(out, line{fmt.Sprintf("%s %s DRIFT (%s)", e.Name, sha, e.Drift), lvl})
		case e.Error != "":
			out = append(out, line{e.Name + " ?", Warn})
		default:
			out = append(out, line{e.Name + " " + short(e.Commit), OK})
		}
	}
	if len(out) == 0 {
		return one("no environments", c.Level)
	}
	return out
}

func puppetDBCell(h *Host) cell {
	p := h.PuppetDB
	if p == nil {
		return na
	}
	if p.Error != "" && p.State == "" {
		return one(p.Error, p.Level)
	}
	q := "?"
	if p.QueueDepth != nil {
		q = fmt.Sprint(*p.QueueDepth)
	}
	c := cell{{p.State + ", queue " + q, p.Level}}
	switch {
	case p.Error != "":
		c = append(c, line{p.Error, p.Level})
	case p.LastCommand.IsZero():
		c = append(c, line{fmt.Sprintf("%d nodes, no command yet", p.Nodes), OK})
	default:
		c = append(c, line{fmt.Sprintf("%d nodes, last %s", p.Nodes, p.LastCommand.Format("2006-01-02 15:04Z")), OK})
	}
	return c
}

// cut shortens a cell's line to n runes (the problems list has it whole).
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
