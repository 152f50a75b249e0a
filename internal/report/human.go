package report

import (
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/muesli/termenv"
	"golang.org/x/term"

	"github.com/troupe/troupe/internal/secret"
)

// HumanOptions tunes the human reporter.
type HumanOptions struct {
	// Verbose shows every host's live output lines. The CLI should default
	// it to true (the zero value hides them); hidden lines still reach the
	// debug log, and a failure always shows its error and remote stderr.
	Verbose bool
	// Color is auto (colour when the writer is a terminal, honouring
	// NO_COLOR and CLICOLOR_FORCE), always or never. Anything else is auto.
	Color string
	// LogPath, when set, is printed at the end of a failed run so the
	// operator can find the full debug log.
	LogPath string
}

// bannerHosts is how many of a step's targets its banner names.
const bannerHosts = 6

// hostPalette holds ANSI 256 colours that read on dark and light terminals.
var hostPalette = []string{"39", "208", "170", "76", "214", "45", "204", "141", "35", "33", "99", "178"}

// Human writes what an operator reads: step banners, host-prefixed live
// output, per-host results, noop previews, warnings, and on Close a summary
// table. On a writer that is not a terminal it writes plain ASCII text with
// no escape codes.
type Human struct {
	mu      sync.Mutex
	w       io.Writer
	red     *secret.Redactor
	opts    HumanOptions
	tty     bool
	counter *Counter
	pad     int             // width of the longest host name seen
	known   map[string]bool // hosts counted in pad
	start   time.Time       // time of the first event, for the wall time without RunEnd
	ended   bool            // RunEnd seen
	wall    time.Duration
	runErr  string
	failed  bool
	closed  bool
	err     error // first write error

	r                                         *lipgloss.Renderer
	title, dim, warn, add, del, hunk          lipgloss.Style
	stChanged, stOK, stSkipped, stFailed, bad lipgloss.Style
}

// NewHuman returns a Human reporter writing to w. Output is the same with
// and without colour apart from escape codes.
func NewHuman(w io.Writer, red *secret.Redactor, opts HumanOptions) Reporter {
	r := NewRenderer(w, opts.Color)
	s := r.NewStyle
	color := func(c string) lipgloss.Style { return s().Foreground(lipgloss.Color(c)) }
	return &Human{
		w:         w,
		red:       red,
		opts:      opts,
		tty:       IsTerminal(w),
		counter:   NewCounter(nil), // events are redacted before they reach it
		known:     map[string]bool{},
		r:         r,
		title:     s().Bold(true),
		dim:       s().Faint(true),
		warn:      color("214"),
		add:       color("34"),
		del:       color("160"),
		hunk:      color("37"),
		stChanged: color("214"),
		stOK:      color("34"),
		stSkipped: color("37"),
		stFailed:  color("196").Bold(true),
		bad:       color("196"),
	}
}

// NewRenderer is a lipgloss renderer for w honouring --color: auto (the
// colour profile of w itself, NO_COLOR and CLICOLOR_FORCE), always or never.
func NewRenderer(w io.Writer, color string) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(w) // detects the colour profile of w itself
	switch color {
	case "always":
		r.SetColorProfile(termenv.ANSI256)
	case "never":
		r.SetColorProfile(termenv.Ascii)
	}
	return r
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Emit prints e. Each event is written with one Write of whole lines.
func (h *Human) Emit(e Event) {
	if e.Kind == Debug {
		return
	}
	e = redact(h.red, e)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if h.start.IsZero() {
		h.start = e.Time
	}
	h.counter.Emit(e)
	h.see(e.Host)
	for _, host := range e.Hosts {
		h.see(host)
	}
	var b strings.Builder
	switch e.Kind {
	case RunStart:
		fmt.Fprintf(&b, "%s\n", h.title.Render(fmt.Sprintf("Plan %s on %s", e.Plan, plural(len(e.Hosts), "host"))))
	case StepStart:
		line := "==> " + e.Step
		if e.Title != "" {
			line += "  " + e.Title
		}
		fmt.Fprintf(&b, "\n%s%s\n", h.title.Render(line), h.dim.Render(bannerList(e.Hosts)))
	case HostLine:
		if h.opts.Verbose {
			for _, l := range Lines(e.Text) {
				fmt.Fprintf(&b, "%s | %s\n", h.host(e.Host), l)
			}
		}
	case HostResult:
		h.result(&b, e)
	case WouldRun:
		head, rest := firstRest(e.Text)
		fmt.Fprintf(&b, "%s  would run: %s\n", h.host(e.Host), head)
		for _, l := range rest {
			fmt.Fprintf(&b, "%s%s\n", h.indent(), l)
		}
	case WouldWrite:
		fmt.Fprintf(&b, "%s  would write: %s\n", h.host(e.Host), flat(e.Text))
		for _, l := range Lines(e.Diff) {
			fmt.Fprintf(&b, "%s%s\n", h.indent(), h.diffLine(l))
		}
	case StepEnd:
		// goreleaser: only durations worth waiting for are worth printing.
		if e.Duration >= 10*time.Second {
			fmt.Fprintf(&b, "%s\n", h.dim.Render(fmt.Sprintf("    %s took %s", e.Step, formatDuration(e.Duration))))
		}
	case Warning:
		msg := "warning: "
		if e.Host != "" {
			msg += e.Host + ": "
		}
		for i, l := range Lines(e.Text) {
			if i > 0 {
				msg = "         "
			}
			fmt.Fprintf(&b, "%s\n", h.warn.Render(msg+l))
		}
	case RunEnd:
		h.ended = true
		h.wall = e.Duration
		h.runErr = e.Error
		h.failed = e.Status == Failed
	}
	h.write(b.String())
}

func (h *Human) result(b *strings.Builder, e Event) {
	name := h.host(e.Host)
	switch e.Status {
	case Failed:
		msg := e.Error
		if msg == "" {
			msg = e.Reason
		}
		head, rest := firstRest(msg)
		fmt.Fprintf(b, "%s  %s\n", name, h.stFailed.Render("failed: "+head))
		for _, l := range append(rest, Lines(e.Stderr)...) {
			fmt.Fprintf(b, "%s%s\n", h.indent(), l)
		}
	case Skipped:
		line := h.stSkipped.Render("skipped")
		if e.Reason != "" {
			line += " (" + flat(e.Reason) + ")"
		}
		fmt.Fprintf(b, "%s  %s\n", name, line)
	default:
		st := h.stOK
		if e.Status == Changed {
			st = h.stChanged
		}
		// Pad to "changed" so durations line up.
		line := st.Render(string(e.Status)) + strings.Repeat(" ", max(0, 9-len(e.Status))) + formatDuration(e.Duration)
		if e.Reason != "" {
			line += " (" + flat(e.Reason) + ")"
		}
		fmt.Fprintf(b, "%s  %s\n", name, line)
	}
}

// see widens the host column for a newly seen host.
func (h *Human) see(host string) {
	if host == "" || h.known[host] {
		return
	}
	h.known[host] = true
	h.pad = max(h.pad, lipgloss.Width(host))
}

// host renders a host name padded to the widest host, coloured per host.
func (h *Human) host(name string) string {
	fill := strings.Repeat(" ", max(0, h.pad-lipgloss.Width(name)))
	f := fnv.New32a()
	f.Write([]byte(name))
	c := hostPalette[f.Sum32()%uint32(len(hostPalette))]
	return h.r.NewStyle().Foreground(lipgloss.Color(c)).Render(name) + fill
}

// indent lines continuation text up under a result's status.
func (h *Human) indent() string { return strings.Repeat(" ", h.pad+4) }

func (h *Human) diffLine(l string) string {
	switch {
	case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
		return h.title.Render(l)
	case strings.HasPrefix(l, "+"):
		return h.add.Render(l)
	case strings.HasPrefix(l, "-"):
		return h.del.Render(l)
	case strings.HasPrefix(l, "@@"):
		return h.hunk.Render(l)
	}
	return l
}

func (h *Human) write(s string) {
	if s == "" || h.err != nil {
		return
	}
	_, h.err = io.WriteString(h.w, s)
}

// Close prints the summary table, the failed hosts and the run's outcome,
// and returns the first error writing to w.
func (h *Human) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return h.err
	}
	h.closed = true
	if h.start.IsZero() {
		return nil // nothing happened, nothing to sum up
	}
	wall := h.wall
	if !h.ended {
		wall = time.Since(h.start)
	}
	var b strings.Builder
	hosts := h.counter.Hosts()
	failures := h.counter.Failures()
	if len(hosts) > 0 {
		b.WriteString("\n" + h.summaryTable(hosts) + "\n")
	}
	if len(failures) > 0 {
		fmt.Fprintf(&b, "\n%s\n", h.title.Render("Failed hosts:"))
		for _, f := range failures {
			fmt.Fprintf(&b, "  %s  %s: %s\n", h.host(f.Host), f.Step, h.bad.Render(flat(f.Error)))
		}
	}
	failed := h.failed || len(failures) > 0 || h.runErr != ""
	b.WriteString("\n")
	if failed {
		line := "Run failed after " + formatDuration(wall)
		if n := len(h.counter.FailedHosts()); n > 0 {
			line += fmt.Sprintf(": %d of %s failed", n, plural(len(hosts), "host"))
		}
		b.WriteString(h.bad.Bold(true).Render(line) + "\n")
		for i, l := range Lines(h.runErr) {
			if i == 0 {
				l = "error: " + l
			} else {
				l = "       " + l
			}
			fmt.Fprintf(&b, "%s\n", h.bad.Render(l))
		}
		if h.opts.LogPath != "" {
			fmt.Fprintf(&b, "Debug log: %s\n", h.opts.LogPath)
		}
	} else {
		b.WriteString(h.stOK.Bold(true).Render("Run succeeded in "+formatDuration(wall)) + "\n")
	}
	h.write(b.String())
	return h.err
}

func (h *Human) summaryTable(hosts []HostCounts) string {
	row := func(c HostCounts, dur string) []string {
		return []string{c.Host, strconv.Itoa(c.Changed), strconv.Itoa(c.OK),
			strconv.Itoa(c.Skipped), strconv.Itoa(c.Failed), dur}
	}
	rows := make([][]string, 0, len(hosts)+1)
	for _, c := range hosts {
		rows = append(rows, row(c, formatDuration(c.Duration)))
	}
	total := h.counter.Total()
	total.Host = "TOTAL"
	rows = append(rows, row(total, ""))

	border := lipgloss.ASCIIBorder() // CI logs and pipes get plain ASCII
	if h.tty {
		border = lipgloss.RoundedBorder()
	}
	t := table.New().
		Border(border).
		BorderStyle(h.r.NewStyle()).
		Headers("HOST", "CHANGED", "OK", "SKIPPED", "FAILED", "TIME").
		Rows(rows...).
		StyleFunc(func(r, c int) lipgloss.Style {
			st := h.r.NewStyle().Padding(0, 1)
			if c > 0 {
				st = st.Align(lipgloss.Right)
			}
			switch {
			case r == table.HeaderRow, r == len(rows)-1:
				st = st.Bold(true)
			}
			if r >= 0 && c == 4 && rows[r][4] != "0" {
				st = st.Inherit(h.bad)
			}
			return st
		})
	return t.Render()
}

// flat is remote text cleaned and on one line, for a field printed inside
// a line of its own (a reason, a failed host's error).
func flat(s string) string { return strings.Join(Lines(s), " ") }

// firstRest splits s into its first line and the lines after it.
func firstRest(s string) (string, []string) {
	ls := Lines(s)
	if len(ls) == 0 {
		return "", nil
	}
	return ls[0], ls[1:]
}

func bannerList(hosts []string) string {
	if len(hosts) == 0 {
		return ""
	}
	shown := hosts[:min(len(hosts), bannerHosts)]
	s := strings.Join(shown, ", ")
	if more := len(hosts) - len(shown); more > 0 {
		s += fmt.Sprintf(", +%d more", more)
	}
	return "  [" + s + "]"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// formatDuration prints 0.4s, 2.1s, 59.9s, then 1m02s, 1h03m20s.
func formatDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Round(100*time.Millisecond).Seconds())
	}
	d = d.Round(time.Second)
	hr, m, s := d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second
	if hr > 0 {
		return fmt.Sprintf("%dh%02dm%02ds", hr, m, s)
	}
	return fmt.Sprintf("%dm%02ds", m, s)
}
