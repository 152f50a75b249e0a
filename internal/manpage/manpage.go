// Package manpage writes a section-1 man page (roff, man macros) from a kong
// command tree: the synopsis, every visible command with its arguments and
// flags, the global flags and the environment variables they read. Like the
// completion scripts, it follows the parser, so nothing is kept by hand.
package manpage

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// Page is what the tree does not say.
type Page struct {
	Version     string    // in the footer: "troupe VERSION"
	Description string    // DESCRIPTION, paragraphs separated by blank lines; default: the tree's help
	Date        time.Time // in the footer; the commit's date keeps builds reproducible
	Sections    []Section // after COMMANDS and ENVIRONMENT, e.g. EXIT STATUS, SEE ALSO
}

// Section is an extra section: a paragraph, then tagged items.
type Section struct {
	Title string
	Text  string
	Items []Item
}

// Item is a tagged paragraph (.TP): Tag in bold.
type Item struct{ Tag, Text string }

// Write writes the man page of app.
func Write(w io.Writer, app *kong.Application, p Page) error {
	var b strings.Builder
	name := app.Name
	fmt.Fprintf(&b, ".TH %s 1 %q %q \"User Commands\"\n", strings.ToUpper(name), p.Date.UTC().Format("2006-01-02"), name+" "+p.Version)
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", name, text(strings.TrimSuffix(app.Help, ".")))
	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(&b, ".B %s\n[\\fIglobal flags\\fR] \\fIcommand\\fR [\\fIflags\\fR] [\\fIarguments\\fR]\n", name)
	b.WriteString(".SH DESCRIPTION\n")
	if p.Description != "" {
		b.WriteString(paragraphs(p.Description))
	} else {
		b.WriteString(paragraphs(app.Help + "\n\n" + app.Detail))
	}
	b.WriteString(".SH GLOBAL FLAGS\nEvery command takes these.\n")
	for _, f := range app.Flags {
		flag(&b, f)
	}
	b.WriteString(".SH COMMANDS\n")
	for _, n := range leaves(app.Node) {
		command(&b, name, n)
	}
	if env := environment(app.Node); len(env) > 0 {
		b.WriteString(".SH ENVIRONMENT\n")
		for _, e := range env {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", text(e.Tag), text(e.Text))
		}
	}
	for _, s := range p.Sections {
		fmt.Fprintf(&b, ".SH %s\n", strings.ToUpper(s.Title))
		if s.Text != "" {
			b.WriteString(paragraphs(s.Text))
		}
		for _, it := range s.Items {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", text(it.Tag), paragraphs(it.Text))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// leaves are the visible commands that run something, in tree order.
func leaves(root *kong.Node) []*kong.Node {
	var out []*kong.Node
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, c := range n.Children {
			if c.Hidden || c.Type != kong.CommandNode {
				continue
			}
			if visibleChildren(c) == 0 {
				out = append(out, c)
			}
			walk(c)
		}
	}
	walk(root)
	return out
}

func visibleChildren(n *kong.Node) int {
	k := 0
	for _, c := range n.Children {
		if !c.Hidden && c.Type == kong.CommandNode {
			k++
		}
	}
	return k
}

func command(b *strings.Builder, prog string, n *kong.Node) {
	fmt.Fprintf(b, ".SS \"%s %s", prog, text(n.Path()))
	for _, a := range n.Positional {
		fmt.Fprintf(b, " %s", text(a.Summary()))
	}
	b.WriteString("\"\n")
	b.WriteString(paragraphs(n.Help + "\n\n" + n.Detail))
	for _, a := range n.Positional {
		fmt.Fprintf(b, ".TP\n.I %s\n%s\n", text(a.Name), text(a.Help))
	}
	// the flags of this command and of its groups, not the global ones
	for p := n; p != nil && p.Parent != nil; p = p.Parent {
		for _, f := range p.Flags {
			flag(b, f)
		}
	}
}

func flag(b *strings.Builder, f *kong.Flag) {
	if f.Hidden {
		return
	}
	b.WriteString(".TP\n")
	if f.Short != 0 {
		fmt.Fprintf(b, "\\fB\\-%c\\fR, ", f.Short)
	}
	fmt.Fprintf(b, "\\fB\\-\\-%s\\fR", text(f.Name))
	if !f.IsBool() && !f.IsCounter() {
		fmt.Fprintf(b, "=\\fI%s\\fR", text(f.FormatPlaceHolder()))
	}
	b.WriteString("\n" + text(f.Help))
	// without a placeholder kong shows the default in its place (--color="auto");
	// some help texts name theirs already
	if f.HasDefault && f.Default != "" && !f.IsBool() && f.PlaceHolder != "" && !strings.Contains(strings.ToLower(f.Help), "default") {
		fmt.Fprintf(b, " Default: %s.", text(f.Default))
	}
	if len(f.Envs) > 0 {
		b.WriteString(" Environment: ")
		for i, e := range f.Envs {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "\\fB%s\\fR", text(e))
		}
		b.WriteString(".")
	}
	b.WriteString("\n")
}

// environment lists each variable a visible flag reads, once, sorted.
func environment(root *kong.Node) []Item {
	seen := map[string]bool{}
	var out []Item
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			for _, e := range f.Envs {
				if !f.Hidden && !seen[e] {
					seen[e] = true
					out = append(out, Item{e, "The default of --" + f.Name + ": " + f.Help})
				}
			}
		}
		for _, c := range n.Children {
			if !c.Hidden {
				walk(c)
			}
		}
	}
	walk(root)
	slices.SortFunc(out, func(a, b Item) int { return strings.Compare(a.Tag, b.Tag) })
	return out
}

// paragraphs: blank-line separated text as .PP paragraphs.
func paragraphs(s string) string {
	var b strings.Builder
	for i, p := range strings.Split(strings.TrimSpace(s), "\n\n") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if i > 0 {
			b.WriteString(".PP\n")
		}
		b.WriteString(text(p) + "\n")
	}
	return b.String()
}

// text escapes s for roff: backslashes; characters past ASCII as \[uXXXX]
// (troff reads bytes, not UTF-8); and a line that would start with a control
// character (. or ') is kept as text.
func text(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r > 0x7e:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	s = b.String()
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}
