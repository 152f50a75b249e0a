package completion

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/troupe/troupe/internal/testenv"
)

// testCLI is a small tree with what the generators must handle: nesting,
// inherited and own enum flags, short flags, an enum argument, a hidden
// command and a quote in a help text.
type testCLI struct {
	Color string `enum:"auto,never" default:"auto" help:"Colour."`
	Run   struct {
		Format    string `enum:"human,json" default:"human" help:"Output."`
		Inventory string `short:"i" help:"Inventory file."`
		Noop      bool   `short:"n" help:"Don't change anything."`
		Plan      string `arg:"" help:"Plan."`
	} `cmd:"" help:"Run a plan."`
	Inventory struct {
		Show  struct{} `cmd:"" help:"Show it."`
		Graph struct {
			Format string `enum:"mermaid,dot" default:"mermaid" help:"Format."`
		} `cmd:"" help:"Draw it."`
	} `cmd:"" help:"It's the inventory."`
	Schema struct {
		Kind string `arg:"" enum:"plan,inventory" help:"Kind."`
	} `cmd:"" help:"Print a schema."`
	Secret struct{} `cmd:"" hidden:"" help:"Not shown."`
}

func commands(t *testing.T) []Command {
	t.Helper()
	k, err := kong.New(&testCLI{}, kong.Name("prog"))
	if err != nil {
		t.Fatal(err)
	}
	return FromKong(k.Model.Node)
}

func script(t *testing.T, shell string) string {
	t.Helper()
	var b strings.Builder
	if err := Write(&b, shell, "prog", commands(t)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "prog."+shell)
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// cases are command lines (the last word being completed) and the
// candidates every shell must offer.
var cases = []struct{ line, want string }{
	{"prog ", "inventory run schema"},
	{"prog inventory ", "graph show"},
	{"prog --color never inventory graph --format ", "dot mermaid"},
	{"prog run -i inv.yaml --f", "--format"},
	{"prog run --color ", "auto never"},
	{"prog schema ", "inventory plan"},
	{"prog inventory graph --", "--color --format --help"},
}

func sorted(out string) string {
	f := strings.Fields(out)
	slices.Sort(f)
	return strings.Join(slices.Compact(f), " ")
}

func TestBash(t *testing.T) {
	file := script(t, "bash")
	for _, tc := range cases {
		cmd := exec.Command("bash", "-c", `source "$1"
read -ra COMP_WORDS <<<"$2"; [[ $2 == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _prog; echo "${COMPREPLY[*]}"`, "bash", file, tc.line)
		out, err := cmd.CombinedOutput()
		if err != nil || sorted(string(out)) != tc.want {
			t.Errorf("%q: got %q, want %q (%v)", tc.line, out, tc.want, err)
		}
	}
}

// TestZsh runs the completion function with zsh's completion builtins
// stubbed to print what they were given (filtered by $PREFIX, as they do).
func TestZsh(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		testenv.Skip(t, "zsh is not installed (scripts/install-test-deps.sh installs it)")
	}
	file := script(t, "zsh")
	if out, err := exec.Command("zsh", "-n", file).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	for _, tc := range cases {
		cmd := exec.Command("zsh", "-f", "-c", `compdef() { : }
_describe() { local x; for x in ${(P)4}; do x=${x%%:*}; [[ $x == ${PREFIX}* ]] && print -r -- $x; done; : }
compadd() { shift; local x; for x in "$@"; do [[ $x == ${PREFIX}* ]] && print -r -- $x; done; : }
_files() { print -r -- FILES }
source "$1"
words=(${(z)2}); [[ $2 == *" " ]] && words+=("")
CURRENT=${#words}; PREFIX=${words[CURRENT]}
_prog`, "zsh", file, tc.line)
		out, err := cmd.CombinedOutput()
		if err != nil || sorted(string(out)) != tc.want {
			t.Errorf("%q: got %q, want %q (%v)", tc.line, out, tc.want, err)
		}
	}
}

// TestFish asks fish itself (complete -C) what it would offer.
func TestFish(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		testenv.Skip(t, "fish is not installed (scripts/install-test-deps.sh installs it)")
	}
	file := script(t, "fish")
	for _, tc := range cases {
		out, err := exec.Command("fish", "--no-config", "-c", `source $argv[1]; complete -C $argv[2] | string replace -r '\t.*' ''; true`, file, tc.line).CombinedOutput()
		got := sorted(string(out))
		if strings.HasSuffix(tc.line, "--") || strings.HasSuffix(tc.line, "--f") {
			// fish adds its own --help for every command: compare what we wrote
			got = strings.Join(slices.DeleteFunc(strings.Fields(got), func(s string) bool { return !strings.HasPrefix(s, "--") }), " ")
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, want %q (%v)", tc.line, out, tc.want, err)
		}
	}
}

func TestScriptsMentionEveryVisibleCommand(t *testing.T) {
	for _, shell := range Shells {
		b, err := os.ReadFile(script(t, shell))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, w := range []string{"run", "inventory", "graph", "show", "schema", "format"} {
			if !strings.Contains(s, w) {
				t.Errorf("%s script lacks %q", shell, w)
			}
		}
		if shell != "bash" && !strings.Contains(s, "It") { // bash shows no help texts
			t.Errorf("%s script lacks the help texts", shell)
		}
		if strings.Contains(s, "secret") || strings.Contains(s, "Not shown") {
			t.Errorf("%s script shows the hidden command", shell)
		}
	}
	if err := Write(&strings.Builder{}, "tcsh", "prog", commands(t)); err == nil {
		t.Error("unknown shell accepted")
	}
}
