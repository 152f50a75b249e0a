package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/troupe/troupe/internal/diag"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/yamldoc"
)

// ErrSkip may be returned by a Walk callback to skip a block's children.
var ErrSkip = errors.New("skip children")

// Walk calls fn for every step in pre-order (a block before its children);
// depth is 0 for top-level steps. It stops at the first error fn returns,
// except ErrSkip, which skips the children of that step.
func (p *Plan) Walk(fn func(s *Step, depth int) error) error {
	return walk(p.Steps, 0, fn)
}

func walk(steps []*Step, depth int, fn func(*Step, int) error) error {
	for _, s := range steps {
		if err := fn(s, depth); err != nil {
			if errors.Is(err, ErrSkip) {
				continue
			}
			return err
		}
		if err := walk(s.Steps, depth+1, fn); err != nil {
			return err
		}
	}
	return nil
}

// Find returns the step with this full id ("compilers/drain"), or nil.
func (p *Plan) Find(id string) *Step {
	var found *Step
	_ = p.Walk(func(s *Step, _ int) error {
		if s.ID == id {
			found = s
			return errStop
		}
		return nil
	})
	return found
}

var errStop = errors.New("stop")

// StartLeaf resolves a --start-at id to the action step the run starts at:
// the step itself, or the first action inside a block, role or sub-plan. An
// unknown id is an error naming the nearest ids, so a typo is caught before
// anything connects.
func (p *Plan) StartLeaf(id string) (string, error) {
	s := p.Find(id)
	if s == nil {
		var ids []string
		_ = p.Walk(func(s *Step, _ int) error {
			ids = append(ids, s.ID)
			return nil
		})
		return "", fmt.Errorf("plan %q has no step %q; nearest ids: %s", p.Name, id, strings.Join(yamldoc.Nearest(id, ids, 5), ", "))
	}
	for len(s.Steps) > 0 {
		s = s.Steps[0]
	}
	return s.ID, nil
}

// Param returns the declared param with this name, or nil.
func (p *Plan) Param(name string) *Param { return findParam(p.Params, name) }

// SecretParams returns the names of the params of type secret.
func (p *Plan) SecretParams() []string {
	var out []string
	for _, pr := range p.Params {
		if pr.Type == "secret" {
			out = append(out, pr.Name)
		}
	}
	return out
}

// Tree writes the plan's params and its steps as an indented tree.
func (p *Plan) Tree(out io.Writer) {
	var w bytes.Buffer
	defer func() {
		for _, line := range strings.SplitAfter(w.String(), "\n") {
			io.WriteString(out, strings.TrimRight(line, " \n"))
			if strings.HasSuffix(line, "\n") {
				io.WriteString(out, "\n")
			}
		}
	}()
	fmt.Fprintf(&w, "plan %s", p.Name)
	if p.Description != "" {
		fmt.Fprintf(&w, ": %s", p.Description)
	}
	fmt.Fprintf(&w, "\nfile: %s\n", p.File)
	tw := tabwriter.NewWriter(&w, 0, 4, 2, ' ', 0)
	if len(p.Params) > 0 {
		fmt.Fprintln(&w, "params:")
		for _, pr := range p.Params {
			req := "optional"
			switch {
			case pr.Required:
				req = "required"
			case pr.Default != nil && pr.Type == "secret":
				req = "default " + secret.Mask
			case pr.Default != nil:
				req = "default " + formatValue(pr.Default)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", pr.Name, pr.Type, req, pr.Description)
		}
		tw.Flush()
	}
	fmt.Fprintln(&w, "steps:")
	_ = p.Walk(func(s *Step, depth int) error {
		what := s.Kind
		switch {
		case s.Source != "":
			what = s.Source
		case s.Kind == "":
			what = "block"
		}
		var extra []string
		if s.TargetHost {
			extra = append(extra, "targets=host:"+s.Targets)
		} else if s.Targets != "" {
			extra = append(extra, "targets="+s.Targets)
		}
		if s.Serial != "" {
			extra = append(extra, "serial="+s.Serial)
		}
		if s.MaxFailures != "" {
			extra = append(extra, "max_failures="+s.MaxFailures)
		}
		if s.RunOnce {
			extra = append(extra, "run_once")
		}
		if s.unreachableSet && s.IgnoreUnreachable {
			extra = append(extra, "ignore_unreachable")
		}
		if s.When != "" {
			extra = append(extra, "when")
		}
		fmt.Fprintf(tw, "  %s%s\t%s\t%s\n", strings.Repeat("  ", depth), s.ID, what, strings.Join(extra, " "))
		return nil
	})
	tw.Flush()
}

func formatValue(v any) string {
	switch v.(type) {
	case string:
		return strconv.Quote(v.(string))
	case []any, map[string]any:
		b, err := json.Marshal(v)
		if err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}

// Summary describes one plan of the plan directory.
type Summary struct {
	Name        string
	Description string
	File        string
}

// List returns the plans under plans/ in FS, sorted by name. Files that do
// not parse are listed with what could be read and reported in the error.
func (l *Loader) List() ([]Summary, error) {
	if l.FS == nil {
		return nil, nil
	}
	var files []string
	for _, pat := range []string{"plans/*.yaml", "plans/*.yml"} {
		m, err := fs.Glob(l.FS, pat)
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	var out []Summary
	var errs []error
	for _, f := range files {
		s := Summary{Name: strings.TrimSuffix(strings.TrimSuffix(path.Base(f), ".yaml"), ".yml"), File: l.fsName() + ":" + f}
		src, err := yamldoc.ReadFile(l.FS, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d, body, err := yamldoc.Parse(s.File, src)
		if err != nil {
			errs = append(errs, err)
		} else if ps, _ := d.Mapping(body, "a plan"); len(d.Errs) == 0 {
			for _, p := range ps {
				switch p.Key {
				case "name":
					if v, ok := d.Str(p.Val, "name"); ok && v != "" {
						s.Name = v
					}
				case "description":
					s.Description, _ = d.Str(p.Val, "description")
				}
			}
		}
		if err := d.Errs.Err(); err != nil {
			errs = append(errs, err)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, errors.Join(errs...)
}

// CheckTargets runs check (the inventory's CheckSelector) on the targets and
// delegate_to of every step and returns positioned errors. Targets holding a template are
// only known at run time and are skipped.
func CheckTargets(p *Plan, check func(expr string) error) error {
	var errs diag.List
	_ = p.Walk(func(s *Step, _ int) error {
		for _, sel := range []struct {
			key, expr string
			at        Pos
		}{{"targets", s.Targets, s.targetsPos}, {"delegate_to", s.DelegateTo, s.delegatePos}} {
			if sel.expr == "" || strings.Contains(sel.expr, "{{") || sel.key == "targets" && s.TargetHost {
				continue // known at run time; {host: NAME} is looked up then (exit 2 before anything connects)
			}
			if err := check(sel.expr); err != nil {
				at := sel.at
				if at.Line == 0 {
					at = s.Pos
				}
				errs = append(errs, diag.New(at.File, p.sources[at.File], at.Line, at.Col,
					"step %q: %s %q: %s", s.ID, sel.key, sel.expr, strings.ReplaceAll(err.Error(), "\n", "; ")))
			}
		}
		return nil
	})
	return errs.Err()
}

// BindParams converts params given on the command line to typed values:
// int, bool, list (comma-separated or a JSON array), map (a JSON object);
// certname and serial are checked (see CheckCertname, CheckSerial); string
// and secret are taken as is. Defaults are applied and params neither
// given nor defaulted get their type's zero value. Unknown and missing
// required params are errors.
func (p *Plan) BindParams(given map[string]string) (map[string]any, error) {
	var errs []error
	out := map[string]any{}
	for _, name := range yamldoc.SortedKeys(given) {
		if findParam(p.Params, name) == nil {
			errs = append(errs, fmt.Errorf("unknown param %q: plan %q declares %s", name, p.Name, paramNames(p.Params)))
		}
	}
	for _, pr := range p.Params {
		raw, ok := given[pr.Name]
		switch {
		case ok:
			v, err := convert(pr.Type, raw)
			if err != nil {
				errs = append(errs, fmt.Errorf("param %q (%s): %v", pr.Name, pr.Type, err))
				continue
			}
			out[pr.Name] = v
		case pr.Required:
			errs = append(errs, fmt.Errorf("missing required param %q (%s)%s", pr.Name, pr.Type, descSuffix(pr.Description)))
		case pr.Default != nil:
			out[pr.Name] = pr.Default
		default:
			out[pr.Name] = zero(pr.Type)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func convert(typ, raw string) (any, error) {
	switch typ {
	case "int":
		v, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", raw)
		}
		return v, nil
	case "bool":
		v, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", raw)
		}
		return v, nil
	case "list":
		s := strings.TrimSpace(raw)
		if strings.HasPrefix(s, "[") {
			var v []any
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				return nil, fmt.Errorf("invalid JSON array: %v", err)
			}
			return normalizeJSON(v), nil
		}
		out := []any{}
		if s == "" {
			return out, nil
		}
		for _, part := range strings.Split(s, ",") {
			out = append(out, strings.TrimSpace(part))
		}
		return out, nil
	case "map":
		var v map[string]any
		if err := json.Unmarshal([]byte(raw), &v); err != nil || v == nil {
			return nil, fmt.Errorf("expected a JSON object like {\"key\": \"value\"}, got %q", raw)
		}
		return normalizeJSON(v), nil
	case "certname", "serial":
		// one value, taken as is: never trimmed, split or read as a pattern
		if err := checkTyped(typ, raw); err != nil {
			return nil, err
		}
	}
	return raw, nil
}

// normalizeJSON turns whole float64 numbers into ints, like YAML decoding does.
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int(x)) {
			return int(x)
		}
	case []any:
		for i := range x {
			x[i] = normalizeJSON(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalizeJSON(x[k])
		}
	}
	return v
}

func zero(typ string) any {
	switch typ {
	case "int":
		return 0
	case "bool":
		return false
	case "list":
		return []any{}
	case "map":
		return map[string]any{}
	}
	return ""
}
