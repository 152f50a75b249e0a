package manpage

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/troupe/troupe/internal/cli"
)

type testCLI struct {
	Dir  string `help:"Where it goes." env:"PROG_DIR" placeholder:"DIR" default:"/var/lib/prog"`
	Days int    `help:"Days (default 90)." placeholder:"DAYS" default:"90"`
	Run  struct {
		Plan   string `arg:"" help:"Plan name."`
		Noop   bool   `short:"n" help:"Change nothing."`
		Format string `help:"Output." enum:"human,json" default:"human"`
	} `cmd:"" help:"Run a plan."`
	Lab struct {
		Up struct {
			Suite string `help:"Suite." env:"PROG_SUITE"`
		} `cmd:"" help:"Start it."`
		Secret struct{} `cmd:"" hidden:"" help:"Never shown."`
	} `cmd:"" help:"The lab."`
	Odd struct {
		Quiet bool `hidden:"" help:"Hidden flag."`
	} `cmd:"" help:".starts with a dot, has a back\\slash → and an arrow"`
}

func page(t *testing.T, tree any, opts ...kong.Option) string {
	t.Helper()
	k, err := kong.New(tree, opts...)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	err = Write(&b, k.Model, Page{Version: "v1.2.0", Date: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC),
		Sections: []Section{{Title: "Exit status", Items: []Item{{"2", "Bad input."}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWrite(t *testing.T) {
	got := page(t, &testCLI{}, kong.Name("prog"), kong.Description("Does things."))
	for _, want := range []string{
		".TH PROG 1 \"2026-12-07\" \"prog v1.2.0\" \"User Commands\"\n",
		"prog \\- Does things\n",
		".SS \"prog run <plan>\"\nRun a plan.\n.TP\n.I plan\nPlan name.\n",
		"\\fB\\-n\\fR, \\fB\\-\\-noop\\fR\nChange nothing.\n",
		"\\fB\\-\\-format\\fR=\\fI\"human\"\\fR\nOutput.\n",
		".SS \"prog lab up\"\n",
		"\\fB\\-\\-dir\\fR=\\fIDIR\\fR\nWhere it goes. Default: /var/lib/prog. Environment: \\fBPROG_DIR\\fR.\n",
		".SH ENVIRONMENT\n.TP\n.B PROG_DIR\nThe default of --dir: Where it goes.\n.TP\n.B PROG_SUITE\n",
		"\\&.starts with a dot, has a back\\eslash \\[u2192] and an arrow\n",
		"\\fB\\-\\-days\\fR=\\fIDAYS\\fR\nDays (default 90).\n",
		".SH EXIT STATUS\n.TP\n.B 2\nBad input.\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	for _, hidden := range []string{"secret", "Never shown", "quiet", "Hidden flag", ".SS \"prog lab\"\n"} {
		if strings.Contains(got, hidden) {
			t.Errorf("page shows %q (hidden, or a group)", hidden)
		}
	}
}

// troupe's own page: groff reads it without a warning, and the rendered
// page names the commands an operator looks for, not the hidden one.
func TestTroupePageRenders(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("no groff")
	}
	src := page(t, &cli.CLI{}, cli.KongOptions()...)
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-rLL=100n")
	cmd.Stdin = strings.NewReader(src)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errb.String())
	}
	plain := stripOverstrike(out.String())
	for _, want := range []string{"troupe - Run YAML plans over SSH", "troupe run <plan>", "troupe plan list",
		"troupe completion <shell>", "troupe lab up", "TROUPE_CONTENT", "--concurrency"} {
		if !strings.Contains(plain, want) {
			t.Errorf("rendered page lacks %q:\n%s", want, plain)
		}
	}
	if strings.Contains(plain, "serve-files") {
		t.Errorf("rendered page shows the hidden lab serve-files")
	}
}

// stripOverstrike turns groff's tty bold and underline (c\bc, _\bc) into text.
func stripOverstrike(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i := 0; i < len(r); i++ {
		if i+2 < len(r) && r[i+1] == '\b' {
			continue
		}
		if r[i] == '\b' {
			continue
		}
		b.WriteRune(r[i])
	}
	return b.String()
}
