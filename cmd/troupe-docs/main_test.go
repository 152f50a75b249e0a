package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/step"
)

// TestCommittedReferenceIsCurrent is the golden check: the files in
// docs/reference that this command writes are exactly what it writes now.
// After a change to an action, a vocabulary or a template function, run
// `just reference` and commit the result.
func TestCommittedReferenceIsCurrent(t *testing.T) {
	files, err := generate("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("generated %d files, want plan.md, inventory.md, templates.md", len(files))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("../../docs/reference", name))
		if err != nil {
			t.Fatalf("%v (run `just reference`)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("docs/reference/%s is not what `go run ./cmd/troupe-docs -out docs/reference` writes: run `just reference`", name)
		}
	}
}

// TestEveryKindAndKeyIsDocumented guards the generator itself: each action
// kind of the registry has its section with each of its fields, and every
// step control is listed.
func TestEveryKindAndKeyIsDocumented(t *testing.T) {
	files, err := generate("../..")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(files["plan.md"])
	v := plan.Vocabulary()
	kinds := 0
	for _, k := range (step.Registry{}).Kinds() {
		if contains(v.ControlKeys, k) || contains(v.BlockKinds, k) {
			continue
		}
		kinds++
		sec := section(doc, "### "+k+"\n")
		if sec == "" {
			t.Errorf("plan.md has no section for action %q", k)
			continue
		}
		a, _ := (step.Registry{}).New(k)
		for _, f := range yamlFields(a) {
			if !strings.Contains(sec, "- `"+f+"`: ") {
				t.Errorf("plan.md: action %s lacks field %q", k, f)
			}
		}
	}
	if kinds == 0 {
		t.Fatal("the registry lists no action kind")
	}
	for _, k := range v.ControlKeys {
		if !strings.Contains(section(doc, "### Controls\n"), "- `"+k+"`: ") {
			t.Errorf("plan.md: control %q is not listed", k)
		}
	}
	if !strings.Contains(doc, "for_groups") || !strings.Contains(doc, "ForGroups adds names by inventory group") {
		t.Error("plan.md lacks package's for_groups with its comment")
	}
	if !strings.Contains(string(files["templates.md"]), "- `major`: ") {
		t.Error("templates.md lacks the major function")
	}
}

func section(doc, heading string) string {
	i := strings.Index(doc, heading)
	if i < 0 {
		return ""
	}
	rest := doc[i+len(heading):]
	if j := strings.Index(rest, "\n#"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// yamlFields are the yaml keys of an action's struct, read by reflection
// independently of the schema.
func yamlFields(a any) []string {
	t := reflect.TypeOf(a).Elem()
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}
