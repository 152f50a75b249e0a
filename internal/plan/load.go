package plan

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/diag"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/yamldoc"
)

// Loader reads plans and roles.
type Loader struct {
	FS      fs.FS            // holds plans/ and roles/
	Actions Actions          // the action kinds steps may use
	Funcs   template.FuncMap // template functions available in plans
	// FSName prefixes the names of files read from FS in positions
	// ("embedded:plans/x.yaml"); "" means "embedded".
	FSName string
	// SiteKeys are the keys of .site templates may read; nil: not checked.
	SiteKeys []string
}

// ParamTypes are the declared types a param may have.
var ParamTypes = []string{"string", "int", "bool", "list", "map", "secret", "certname", "serial"}

var (
	planKeys  = []string{"name", "description", "params", "packages", "steps"}
	roleKeys  = []string{"name", "description", "params", "vars", "steps"}
	paramKeys = []string{"type", "description", "required", "default"}

	// controlKeys are the keys every step may carry besides its action.
	controlKeys = []string{"id", "name", "targets", "delegate_to", "when", "serial", "max_failures", "retries", "delay",
		"until", "timeout", "run_once", "sudo", "creates", "unless", "onlyif", "register",
		"changed_when", "failed_when", "ignore_errors", "vars", "params"}
	// actionOnly are the controls that make no sense on a block, role or sub-plan.
	actionOnly = []string{"retries", "delay", "until", "creates", "unless", "onlyif", "register", "changed_when", "failed_when"}
	blockKinds = []string{"steps", "role", "plan"}

	// maxSteps caps the steps of a plan once its roles and sub-plans are
	// expanded: includes forming a tree (a role including another twice,
	// which includes another twice...) grow exponentially.
	maxSteps = 10_000

	idRE       = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	registerRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	paramRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
)

// srcFile is one parsed plan or role file.
type srcFile struct {
	d    *yamldoc.Doc
	body ast.Node
	dir  string // directory on disk, "" for files from FS
}

// include is one entry of the include chain, for cycle detection.
type include struct{ key, label string }

// scope is what templates of a step may reference.
type scope struct {
	plan      string
	params    *[]Param            // the plan's (or sub-plan's) params, which the roles it includes add to
	registers map[string]ast.Node // register names defined in this file (uniqueness)
	sets      packageSets         // the plan file's package sets (none in a role)
}

type loadCtx struct {
	l          *Loader
	kinds      []string
	files      map[string]*srcFile
	fileOrder  []string
	stack      []include
	registered map[string]bool // registers of steps seen so far, in document order
	errs       diag.List
	secrets    secret.Redactor // secret params' defaults, masked in every error
	nsteps     int             // steps decoded so far, includes expanded
	cur        *Step           // the step whose templates are being checked (see noteRead)
	paramRefs  []paramRef      // .params references, checked at the end (checkParamRefs)
	body       *body           // the steps the role being expanded wraps (see slot)
}

// Load reads a plan by name (plans/NAME.yaml in FS) or by path (ending in
// .yaml/.yml or containing a slash: read from disk), expands its roles and
// sub-plans and checks everything, returning all problems as a diag.List.
func (l *Loader) Load(nameOrPath string) (*Plan, error) {
	c := &loadCtx{l: l, files: map[string]*srcFile{}, registered: map[string]bool{}}
	if l.Actions != nil {
		for _, k := range l.Actions.Kinds() {
			if !slicesContains(controlKeys, k) && !slicesContains(blockKinds, k) {
				c.kinds = append(c.kinds, k)
			}
		}
	}
	key, label, f, err := c.openPlan(nameOrPath, "")
	if err != nil {
		return nil, err
	}
	c.stack = append(c.stack, include{key, label})
	p := &Plan{File: f.d.File, sources: map[string][]byte{}}
	top, _ := f.d.Mapping(f.body, "a plan")
	f.d.CheckKeys(top, "a plan", planKeys...)
	p.Name = strings.TrimSuffix(strings.TrimSuffix(path.Base(filepath.ToSlash(nameOrPath)), ".yaml"), ".yml")
	var stepsN, setsN ast.Node
	for _, kv := range top {
		switch kv.Key {
		case "name":
			if s, ok := f.d.Str(kv.Val, "name"); ok {
				p.Name = s
			}
		case "description":
			p.Description, _ = f.d.Str(kv.Val, "description")
		case "params":
			p.Params = c.params(f, kv.Val)
		case "packages":
			setsN = kv.Val
		case "steps":
			stepsN = kv.Val
		}
	}
	if f.body == nil {
		f.d.Errs = append(f.d.Errs, &diag.Error{File: f.d.File, Msg: "empty plan: expected a mapping with name, params and steps"})
	} else if !hasKey(top, "steps") {
		f.d.Errorf(f.body, "plan %q has no steps", p.Name)
	}
	sc := &scope{plan: p.Name, params: &p.Params, registers: map[string]ast.Node{}}
	if setsN != nil {
		sc.sets = c.packageSets(f, setsN, sc)
	}
	if stepsN != nil {
		p.Steps = c.steps(f, stepsN, "", sc, "plan "+strconv.Quote(p.Name))
		c.untargeted(p.Steps)
	}
	c.checkParamRefs()
	for name, sf := range c.files {
		p.sources[name] = sf.d.Src
	}
	if err := c.collect(); err != nil {
		return nil, err
	}
	return p, nil
}

// untargeted refuses a top-level block without targets that needs hosts
// of its own (when, serial): it would run nothing. A block without either
// runs each of its steps on the targets they name (a sub-plan include).
func (c *loadCtx) untargeted(steps []*Step) {
	for _, s := range steps {
		if s.Targets != "" || s.Steps == nil {
			continue
		}
		if s.When == "" && s.Serial == "" {
			c.untargeted(s.Steps)
			continue
		}
		if f := c.files[s.Pos.File]; f != nil {
			f.d.Errs = append(f.d.Errs, diag.New(f.d.File, f.d.Src, s.Pos.Line, s.Pos.Col,
				"step %q: a block with when or serial needs targets of its own (or an enclosing block's)", s.ID))
		}
	}
}

// collect gathers the errors of every file: file order, then line and column,
// duplicates (a role included twice) dropped.
func (c *loadCtx) collect() error {
	var all diag.List
	seen := map[string]bool{}
	for _, name := range c.fileOrder {
		errs := c.files[name].d.Errs
		sort.SliceStable(errs, func(i, j int) bool {
			a, b := errs[i], errs[j]
			return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
		})
		for _, e := range errs {
			k := e.Position() + "\x00" + e.Msg
			if !seen[k] {
				seen[k] = true
				all = append(all, e)
			}
		}
	}
	all = append(all, c.errs...)
	for _, e := range all {
		e.Msg, e.Excerpt = c.secrets.String(e.Msg), c.secrets.String(e.Excerpt)
	}
	return all.Err()
}

func (l *Loader) fsName() string {
	if l.FSName == "" {
		return "embedded"
	}
	return l.FSName
}

// isPath reports whether a plan reference names a file on disk.
func isPath(s string) bool {
	return strings.HasSuffix(s, ".yaml") || strings.HasSuffix(s, ".yml") || strings.ContainsRune(s, '/') || strings.ContainsRune(s, filepath.Separator)
}

// openPlan reads a plan by name or path; relDir is the directory of the
// including file on disk ("" for the working directory).
func (c *loadCtx) openPlan(ref, relDir string) (key, label string, f *srcFile, err error) {
	if isPath(ref) {
		p := ref
		if relDir != "" && !filepath.IsAbs(p) {
			p = filepath.Join(relDir, p)
		}
		abs, aerr := filepath.Abs(p)
		if aerr != nil {
			abs = p
		}
		key, label = "plan:"+abs, "plan:"+ref
		if f := c.files[p]; f != nil {
			return key, label, f, nil
		}
		src, rerr := yamldoc.ReadFile(nil, p)
		if rerr != nil {
			return "", "", nil, fmt.Errorf("plan %s: %w", ref, rerr)
		}
		f, err = c.parse(p, src, filepath.Dir(p))
		return key, label, f, err
	}
	if !nameRE.MatchString(ref) {
		return "", "", nil, fmt.Errorf("invalid plan name %q", ref)
	}
	if c.l.FS == nil {
		return "", "", nil, fmt.Errorf("unknown plan %q (no plan directory)", ref)
	}
	key, label = "plan:"+ref, "plan:"+ref
	name := c.l.fsName() + ":plans/" + ref + ".yaml"
	if f := c.files[name]; f != nil {
		return key, label, f, nil
	}
	src, rerr := yamldoc.ReadFile(c.l.FS, "plans/"+ref+".yaml")
	if rerr != nil {
		if errors.Is(rerr, fs.ErrNotExist) {
			return "", "", nil, fmt.Errorf("unknown plan %q (plans: %s)", ref, strings.Join(c.names("plans"), ", "))
		}
		return "", "", nil, fmt.Errorf("plan %s: %w", ref, rerr)
	}
	f, err = c.parse(name, src, "")
	return key, label, f, err
}

func (c *loadCtx) openRole(ref string) (*srcFile, error) {
	if !nameRE.MatchString(ref) {
		return nil, fmt.Errorf("invalid role name %q", ref)
	}
	name := c.l.fsName() + ":roles/" + ref + ".yaml"
	if f := c.files[name]; f != nil {
		return f, nil
	}
	if c.l.FS == nil {
		return nil, fmt.Errorf("unknown role %q (no role directory)", ref)
	}
	src, err := yamldoc.ReadFile(c.l.FS, "roles/"+ref+".yaml")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("unknown role %q (roles: %s)", ref, strings.Join(c.names("roles"), ", "))
		}
		return nil, fmt.Errorf("role %s: %w", ref, err)
	}
	return c.parse(name, src, "")
}

// names lists dir/*.yaml in FS without the extension.
func (c *loadCtx) names(dir string) []string {
	m, _ := fs.Glob(c.l.FS, dir+"/*.yaml")
	out := []string{}
	for _, f := range m {
		out = append(out, strings.TrimSuffix(path.Base(f), ".yaml"))
	}
	if len(out) == 0 {
		out = append(out, "none")
	}
	return out
}

func (c *loadCtx) parse(name string, src []byte, dir string) (*srcFile, error) {
	d, body, err := yamldoc.Parse(name, src)
	if err != nil {
		return nil, err
	}
	f := &srcFile{d: d, body: body, dir: dir}
	c.files[name] = f
	c.fileOrder = append(c.fileOrder, name)
	return f, nil
}

// params decodes a plan's params.
func (c *loadCtx) params(f *srcFile, n ast.Node) []Param {
	d := f.d
	ps, ok := d.Mapping(n, "params")
	if !ok {
		return nil
	}
	var out []Param
	for _, kv := range ps {
		line, col := yamldoc.Pos(kv.KeyN)
		p := Param{Name: kv.Key, Type: "string", Pos: Pos{File: d.File, Line: line, Col: col}}
		if !paramRE.MatchString(p.Name) {
			d.Errorf(kv.KeyN, "invalid param name %q (use letters, digits and '_'; it is used as .params.%s)", p.Name, p.Name)
			continue
		}
		what := fmt.Sprintf("param %q", p.Name)
		fields, ok := d.Mapping(kv.Val, what)
		if !ok {
			continue
		}
		d.CheckKeys(fields, what, paramKeys...)
		var defN ast.Node
		for _, fl := range fields {
			switch fl.Key {
			case "type":
				if s, ok := d.Str(fl.Val, what+" type"); ok {
					if !slicesContains(ParamTypes, s) {
						d.Errorf(fl.Val, "%s: unknown type %q (expected one of: %s)", what, s, strings.Join(ParamTypes, ", "))
					} else {
						p.Type = s
					}
				}
			case "description":
				p.Description, _ = d.Str(fl.Val, what+" description")
			case "required":
				p.Required, _ = d.Boolean(fl.Val, what+" required")
			case "default":
				defN = fl.Val
			}
		}
		if defN != nil {
			if v, ok := c.typed(d, defN, p, "default of "+what); ok {
				p.Default = v
			}
			if p.Type == "secret" {
				// whatever it holds, an excerpt of its line must not show it
				if tk := d.Resolve(defN).GetToken(); tk != nil {
					c.secrets.Add(tk.Value)
				}
				if v, ok := p.Default.(string); ok {
					c.secrets.Add(v)
				}
			}
			if p.Required {
				d.Errorf(defN, "%s is required and has a default; use one or the other", what)
			}
		}
		out = append(out, p)
	}
	return out
}

// typed checks that n holds a value of p's type and returns it.
func (c *loadCtx) typed(d *yamldoc.Doc, n ast.Node, p Param, what string) (any, bool) {
	n = d.Resolve(n)
	ok := false
	switch p.Type {
	case "string", "secret", "certname", "serial":
		switch n.(type) {
		case *ast.StringNode, *ast.LiteralNode:
			ok = true
		}
	case "int":
		_, ok = n.(*ast.IntegerNode)
	case "bool":
		_, ok = n.(*ast.BoolNode)
	case "list":
		_, ok = n.(*ast.SequenceNode)
	case "map":
		switch n.(type) {
		case *ast.MappingNode, *ast.MappingValueNode:
			ok = true
		}
	}
	if !ok {
		hint := ""
		if isStringType(p.Type) {
			hint = "; quote it"
		}
		d.Errorf(n, "%s must be %s (type %s), got %s%s", what, article(p.Type), p.Type, yamldoc.Kind(n), hint)
		return nil, false
	}
	v := d.Value(n)
	if str, isStr := v.(string); isStr && (str != "" || p.Type != "certname") {
		// a certname default of "" is the zero value: "none given"
		if err := checkTyped(p.Type, str); err != nil {
			d.Errorf(n, "%s: %v", what, err)
			return nil, false
		}
	}
	return v, true
}

func article(t string) string {
	switch t {
	case "int":
		return "an integer"
	case "bool":
		return "true or false"
	case "list":
		return "a list"
	case "map":
		return "a mapping"
	}
	return "a string"
}

// steps decodes a list of steps; parent is the parent's full id ("" at the top).
func (c *loadCtx) steps(f *srcFile, n ast.Node, parent string, sc *scope, owner string) []*Step {
	d := f.d
	n = d.Resolve(n)
	seq, ok := n.(*ast.SequenceNode)
	if !ok || len(seq.Values) == 0 {
		if ok || yamldoc.IsNull(n) {
			d.Errorf(n, "%s has no steps", owner)
		} else {
			d.Errorf(n, "steps must be a list, got %s", yamldoc.Kind(n))
		}
		return nil
	}
	ids := map[string]ast.Node{}
	var out []*Step
	for _, item := range seq.Values {
		if _, isSlot := slotPair(d, item); isSlot {
			out = append(out, c.slot(f, item, parent, ids)...)
			continue
		}
		if s := c.step(f, item, parent, sc, ids); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// step decodes one step: its id, its form (an action or a block), its
// controls, then the action or block itself, then the conditions that may
// read the step's own result.
func (c *loadCtx) step(f *srcFile, n ast.Node, parent string, sc *scope, ids map[string]ast.Node) *Step {
	d := f.d
	n = d.Resolve(n)
	if !c.countStep(d, n) {
		return nil
	}
	ps, ok := d.Mapping(n, "a step")
	if !ok {
		return nil
	}
	line, col := yamldoc.Pos(n)
	s := &Step{Pos: Pos{File: d.File, Line: line, Col: col}}
	prev := c.cur
	c.cur = s
	defer func() { c.cur = prev }()

	// id first, so every other message can name the step.
	id := c.stepID(d, n, ps, ids)
	label := "step"
	if id != "" {
		label = fmt.Sprintf("step %q", id)
	}
	s.ID = id
	if parent != "" {
		s.ID = parent + "/" + id
	}
	form, act := c.stepForm(d, n, ps, label)
	if form != "" && !slicesContains(blockKinds, form) {
		s.Kind = form // blocks, roles and sub-plans keep Kind ""
	}
	late, varsN, paramsN := c.controls(d, s, ps, form, label, sc)
	var wrapped *yamldoc.Pair
	if i := indexKey(ps, "steps"); form == "role" && i >= 0 {
		wrapped = &ps[i]
	}
	if form != "" {
		c.stepBody(f, s, act, form, varsN, paramsN, wrapped, label, sc)
	}
	if s.Register != "" {
		c.registered[s.Register] = true
	}
	for _, kv := range late {
		c.setCondition(d, s, kv, label+" "+kv.Key, sc)
	}
	if s.Name == "" {
		s.Name = defaultName(s, id)
	}
	return s
}

// countStep counts a step against maxSteps; past it, the step is dropped
// and the first one over says through which includes the plan grew.
func (c *loadCtx) countStep(d *yamldoc.Doc, n ast.Node) bool {
	if c.nsteps++; c.nsteps <= maxSteps {
		return true
	}
	if c.nsteps == maxSteps+1 {
		chain := make([]string, len(c.stack))
		for i, inc := range c.stack {
			chain[i] = inc.label
		}
		d.Errorf(n, "the plan expands to more than %d steps (included through %s): do roles or sub-plans include each other several times?",
			maxSteps, strings.Join(chain, " > "))
	}
	return false
}

// stepID is the step's own id, checked: kebab-case and unique among ids
// (its block's). "" when missing.
func (c *loadCtx) stepID(d *yamldoc.Doc, n ast.Node, ps []yamldoc.Pair, ids map[string]ast.Node) string {
	i := indexKey(ps, "id")
	if i < 0 {
		d.Errorf(n, "step has no id (a kebab-case name unique within its block)")
		return ""
	}
	v, ok := d.Str(ps[i].Val, "id")
	if !ok {
		return ""
	}
	switch prev, dup := ids[v]; {
	case !idRE.MatchString(v):
		d.Errorf(ps[i].Val, "step id %q must be kebab-case (lower-case letters, digits and single dashes)", v)
	case dup:
		pl, pc := yamldoc.Pos(prev)
		d.Errorf(ps[i].Val, "duplicate step id %q (first used at %d:%d)", v, pl, pc)
	default:
		ids[v] = ps[i].Val
	}
	return v
}

// stepForm finds the step's one action kind or block key (steps, role,
// plan) and refuses unknown keys; form is "" when there is not exactly one.
func (c *loadCtx) stepForm(d *yamldoc.Doc, n ast.Node, ps []yamldoc.Pair, label string) (form string, act yamldoc.Pair) {
	var found []string
	var actN []yamldoc.Pair
	unknown := false
	for _, kv := range ps {
		switch {
		case slicesContains(blockKinds, kv.Key) || slicesContains(c.kinds, kv.Key):
			found = append(found, kv.Key)
			actN = append(actN, kv)
		case slicesContains(controlKeys, kv.Key):
		default:
			unknown = true
			d.Errorf(kv.KeyN, "unknown key %q in %s%s: not a step control or an action (actions: %s)",
				kv.Key, label, yamldoc.Suggest(kv.Key, append(append([]string{}, controlKeys...), c.kinds...)), strings.Join(c.kinds, ", "))
		}
	}
	if len(found) == 2 && slicesContains(found, "role") && slicesContains(found, "steps") {
		// a role that wraps a body: the steps go in its slot (see slot)
		return "role", actN[indexOf(found, "role")]
	}
	switch {
	case len(found) > 1:
		d.Errorf(actN[1].KeyN, "%s has several actions [%s]; use exactly one", label, strings.Join(found, " "))
	case len(found) == 0 && !unknown:
		d.Errorf(n, "%s has no action: expected one of %s, or steps, role, plan", label, strings.Join(c.kinds, ", "))
	case len(found) == 1:
		return found[0], actN[0]
	}
	return "", yamldoc.Pair{}
}

// controls decodes the step's controls in document order. It returns the
// conditions to check once the step's own register is known (until,
// changed_when, failed_when) and the vars and params of an include.
func (c *loadCtx) controls(d *yamldoc.Doc, s *Step, ps []yamldoc.Pair, form, label string, sc *scope) (late []yamldoc.Pair, varsN, paramsN ast.Node) {
	isAction := s.Kind != ""
	for _, kv := range ps {
		what := label + " " + kv.Key
		if form != "" && !isAction && slicesContains(actionOnly, kv.Key) {
			d.Errorf(kv.KeyN, "%q applies to action steps only, not to %s (a %s)", kv.Key, label, kindLabel(form))
			continue
		}
		switch kv.Key {
		case "until", "changed_when", "failed_when":
			late = append(late, kv)
		case "vars":
			varsN = kv.Val
			if form != "" && form != "role" {
				d.Errorf(kv.KeyN, "\"vars\" is only allowed on a role include, not on %s (a %s)", label, kindLabel(form))
			}
		case "params":
			paramsN = kv.Val
			if form != "" && form != "plan" {
				d.Errorf(kv.KeyN, "\"params\" is only allowed on a sub-plan include, not on %s (a %s)", label, kindLabel(form))
			}
		default:
			c.control(d, s, kv, what, sc)
		}
	}
	return late, varsN, paramsN
}

// control decodes one control that needs nothing but its own value.
func (c *loadCtx) control(d *yamldoc.Doc, s *Step, kv yamldoc.Pair, what string, sc *scope) {
	switch kv.Key {
	case "name":
		s.Name, _ = d.Str(kv.Val, what)
	case "targets":
		s.Targets, s.TargetHost = c.targets(d, kv.Val, what)
		line, col := yamldoc.Pos(kv.Val)
		s.targetsPos = Pos{File: d.File, Line: line, Col: col}
		c.template(d, kv.Val, s.Targets, sc)
		c.paramsOnly(d, kv.Val, s.Targets, what)
	case "delegate_to":
		s.DelegateTo = c.selector(d, kv.Val, what)
		line, col := yamldoc.Pos(kv.Val)
		s.delegatePos = Pos{File: d.File, Line: line, Col: col}
		c.template(d, kv.Val, s.DelegateTo, sc)
	case "when", "creates", "unless", "onlyif":
		c.setCondition(d, s, kv, what, sc)
	case "serial":
		s.Serial, _ = c.count(d, kv.Val, what, 1)
		c.template(d, kv.Val, s.Serial, sc)
	case "max_failures":
		if s.MaxFailures, _ = c.count(d, kv.Val, what, 0); strings.Contains(s.MaxFailures, "{{") {
			d.Errorf(kv.Val, "%s cannot be a template", what)
		}
	case "retries":
		if v, ok := d.Integer(kv.Val, what); ok {
			if v < 0 {
				d.Errorf(kv.Val, "%s must be 0 or more, got %d", what, v)
			}
			s.Retries = v
		}
	case "delay", "timeout":
		if v, ok := c.duration(d, kv.Val, what, kv.Key == "delay"); ok {
			if kv.Key == "delay" {
				s.Delay = v
			} else {
				s.Timeout = v
			}
		}
	case "run_once":
		s.RunOnce, _ = d.Boolean(kv.Val, what)
	case "ignore_errors":
		s.IgnoreErrors, _ = d.Boolean(kv.Val, what)
	case "sudo":
		if v, ok := d.Boolean(kv.Val, what); ok {
			s.Sudo = &v
		}
	case "register":
		s.Register = c.register(d, kv.Val, what, sc)
	}
}

// setCondition decodes a condition or guard into its field of s.
func (c *loadCtx) setCondition(d *yamldoc.Doc, s *Step, kv yamldoc.Pair, what string, sc *scope) {
	v := c.condition(d, kv.Val, what)
	c.template(d, kv.Val, v, sc)
	*map[string]*string{
		"when": &s.When, "creates": &s.Creates, "unless": &s.Unless, "onlyif": &s.Onlyif,
		"until": &s.Until, "changed_when": &s.ChangedWhen, "failed_when": &s.FailedWhen,
	}[kv.Key] = v
}

// register checks a register name: an identifier, once per file.
func (c *loadCtx) register(d *yamldoc.Doc, n ast.Node, what string, sc *scope) string {
	v, ok := d.Str(n, what)
	if !ok {
		return ""
	}
	switch prev, dup := sc.registers[v]; {
	case !registerRE.MatchString(v):
		d.Errorf(n, "%s: %q is not an identifier ([a-z_][a-z0-9_]*)", what, v)
	case dup:
		pl, pc := yamldoc.Pos(prev)
		d.Errorf(n, "%s: %q is already registered at %d:%d", what, v, pl, pc)
	default:
		sc.registers[v] = n
		return v
	}
	return ""
}

// stepBody decodes the step's action, or its block: inline steps, an
// expanded role or an expanded sub-plan.
func (c *loadCtx) stepBody(f *srcFile, s *Step, kv yamldoc.Pair, form string, varsN, paramsN ast.Node, wrapped *yamldoc.Pair, label string, sc *scope) {
	d := f.d
	switch form {
	case "steps":
		s.Steps = c.steps(f, kv.Val, s.ID, sc, label)
	case "role":
		c.expandRole(f, s, kv, varsN, wrapped, sc, label)
	case "plan":
		c.expandPlan(f, s, kv, paramsN, sc, label)
	default:
		body := kv.Val
		if body == nil {
			body = ast.Null(kv.KeyN.GetToken())
		}
		v, err := c.l.Actions.Decode(s.Kind, c.withSet(d, body, sc, label))
		if err != nil {
			for _, e := range d.FromYAML(err).(diag.List) {
				e.Msg = fmt.Sprintf("%s %s: %s", label, s.Kind, e.Msg)
				d.Errs = append(d.Errs, e)
			}
		} else {
			s.Action = v
			c.source(d, label+" "+s.Kind, body, v)
		}
		c.templates(d, kv.Val, sc)
	}
}

// source checks the local file an action reads; the error points at src.
func (c *loadCtx) source(d *yamldoc.Doc, what string, body ast.Node, action any) {
	sc, ok := c.l.Actions.(SourceChecker)
	if !ok {
		return
	}
	if err := sc.CheckSource(action, c.l.FS); err != nil {
		at := body
		if ps, _ := d.Mapping(body, what); indexKey(ps, "src") >= 0 {
			at = ps[indexKey(ps, "src")].Val
		}
		d.Errorf(at, "%s: %v", what, err)
	}
}

func kindLabel(k string) string {
	switch k {
	case "steps":
		return "block"
	case "role":
		return "role include"
	case "plan":
		return "sub-plan include"
	}
	return k + " step"
}

// defaultName is the title of a step without `name`.
func defaultName(s *Step, id string) string {
	if st, ok := s.Action.(fmt.Stringer); ok {
		if t := st.String(); t != "" {
			return t
		}
	}
	switch {
	case strings.HasPrefix(s.Source, "role:"):
		return "Role " + strings.TrimPrefix(s.Source, "role:")
	case strings.HasPrefix(s.Source, "plan:"):
		return "Plan " + strings.TrimPrefix(s.Source, "plan:")
	case s.Kind == "":
		return strings.ReplaceAll(id, "-", " ")
	}
	words := strings.ReplaceAll(s.Kind, "_", " ")
	return strings.ToUpper(words[:1]) + words[1:] + " (" + id + ")"
}

// selector decodes targets: a selector string or a list of terms.
func (c *loadCtx) selector(d *yamldoc.Doc, n ast.Node, what string) string {
	if seq, ok := d.Resolve(n).(*ast.SequenceNode); ok {
		var terms []string
		for _, x := range seq.Values {
			if s, ok := d.Str(x, what+" entry"); ok {
				terms = append(terms, s)
			}
		}
		return strings.Join(terms, ",")
	}
	s, ok := d.Str(n, what)
	if ok && strings.TrimSpace(s) == "" {
		d.Errorf(n, "%s must not be empty", what)
	}
	return s
}

// targets decodes a step's targets: a selector, or {host: NAME}, exactly
// the inventory host of that name (never a group, alias or glob): what a
// certname param names.
func (c *loadCtx) targets(d *yamldoc.Doc, n ast.Node, what string) (string, bool) {
	switch d.Resolve(n).(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		ps, _ := d.Mapping(n, what)
		d.CheckKeys(ps, what, "host")
		i := indexKey(ps, "host")
		if i < 0 {
			d.Errorf(n, "%s: a mapping names one host: {host: NAME}", what)
			return "", false
		}
		v, ok := d.Str(ps[i].Val, what+" host")
		if ok && strings.TrimSpace(v) == "" {
			d.Errorf(ps[i].Val, "%s host must not be empty", what)
		}
		return v, true
	}
	return c.selector(d, n, what), false
}

// paramsOnly refuses a template that reads more than TargetsData holds:
// targets and a sub-plan's params are rendered before any host is in
// scope, with the params alone.
func (c *loadCtx) paramsOnly(d *yamldoc.Doc, n ast.Node, s, what string) {
	if !strings.Contains(s, "{{") {
		return
	}
	t, err := template.New("").Funcs(c.l.Funcs).Parse(s)
	if err != nil {
		return // reported by template
	}
	roots := targetsRoots()
	bad := map[string]bool{}
	for _, tr := range t.Templates() {
		if tr.Tree == nil {
			continue
		}
		walkTemplate(tr.Tree.Root, true, func(idents []string) {
			if len(idents) > 0 && !slicesContains(roots, idents[0]) && !bad[idents[0]] {
				bad[idents[0]] = true
				d.Errorf(n, "%s reads .%s: it is rendered before any host is in scope, with .%s alone",
					what, idents[0], strings.Join(roots, ", ."))
			}
		})
	}
}

// condition decodes a template string (a bare boolean is accepted too).
func (c *loadCtx) condition(d *yamldoc.Doc, n ast.Node, what string) string {
	if b, ok := d.Resolve(n).(*ast.BoolNode); ok {
		return strconv.FormatBool(b.Value)
	}
	s, _ := d.Str(n, what)
	return s
}

// count decodes serial / max_failures: an integer >= min or "N%".
func (c *loadCtx) count(d *yamldoc.Doc, n ast.Node, what string, min int) (string, bool) {
	n = d.Resolve(n)
	if i, ok := n.(*ast.IntegerNode); ok {
		v, _ := d.Integer(i, what)
		if v < min {
			d.Errorf(n, "%s must be %d or more, got %d", what, min, v)
			return "", false
		}
		return strconv.Itoa(v), true
	}
	if s, ok := n.(*ast.StringNode); ok && strings.Contains(s.Value, "{{") {
		// A template (serial: "{{ .params.batch }}"): checked when rendered.
		return s.Value, true
	} else if ok {
		num, pct := strings.CutSuffix(s.Value, "%")
		v, err := strconv.Atoi(num)
		switch {
		case err != nil:
		case v < min || pct && v > 100:
			d.Errorf(n, "%s must be between %d and 100%%, got %q", what, min, s.Value)
			return "", false
		default:
			if pct {
				return strconv.Itoa(v) + "%", true
			}
			return strconv.Itoa(v), true
		}
	}
	d.Errorf(n, "%s must be an integer or a percentage like \"25%%\", got %s", what, yamldoc.Kind(n))
	return "", false
}

func (c *loadCtx) duration(d *yamldoc.Doc, n ast.Node, what string, zeroOK bool) (time.Duration, bool) {
	s, ok := d.Str(n, what)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.Errorf(n, "%s: invalid duration %q (use a form like \"30s\" or \"5m\")", what, s)
		return 0, false
	case v < 0 || v == 0 && !zeroOK:
		d.Errorf(n, "%s must be positive, got %q", what, s)
		return 0, false
	}
	return v, true
}

// expandRole turns `role: NAME` into a block of the role's steps.
func (c *loadCtx) expandRole(f *srcFile, s *Step, kv yamldoc.Pair, varsN ast.Node, wrapped *yamldoc.Pair, sc *scope, label string) {
	d := f.d
	name, ok := d.Str(kv.Val, label+" role")
	if !ok {
		return
	}
	s.Source = "role:" + name
	inc := include{key: "role:" + name, label: "role:" + name}
	if c.cycle(d, kv.Val, inc) {
		return
	}
	rf, err := c.openRole(name)
	if err != nil {
		if l, ok := diag.As(err); ok {
			c.errs = append(c.errs, l...)
		} else {
			d.Errorf(kv.Val, "%s: %v", label, err)
		}
		return
	}
	rd := rf.d
	top, _ := rd.Mapping(rf.body, "a role")
	rd.CheckKeys(top, "a role", roleKeys...)
	// The role's own vars are defaults (below inventory vars); the include's
	// vars sit above inventory vars.
	defaults := map[string]any{}
	var stepsN ast.Node
	for _, p := range top {
		switch p.Key {
		case "name", "description":
			rd.Str(p.Val, p.Key)
		case "params":
			c.roleParams(rf, p.Val, sc)
		case "vars":
			if ps, ok := rd.Mapping(p.Val, "role vars"); ok {
				for _, v := range ps {
					defaults[v.Key] = rd.Value(v.Val)
					c.templates(rd, v.Val, sc)
				}
			}
		case "steps":
			stepsN = p.Val
		}
	}
	vars := map[string]any{}
	if varsN != nil {
		if ps, ok := d.Mapping(varsN, label+" vars"); ok {
			for _, v := range ps {
				vars[v.Key] = d.Value(v.Val)
				c.templates(d, v.Val, sc)
			}
		}
	}
	s.Vars, s.Defaults = vars, defaults
	if rf.body == nil || stepsN == nil {
		rd.Errorf(rf.body, "role %q has no steps", name)
		if rf.body == nil {
			d.Errorf(kv.Val, "role %q is empty", name)
		}
		return
	}
	c.stack = append(c.stack, inc)
	rsc := &scope{plan: sc.plan, params: sc.params, registers: map[string]ast.Node{}}
	outer := c.body
	var b *body
	if wrapped != nil {
		b = &body{f: f, n: wrapped.Val, sc: sc, outer: outer, key: wrapped.KeyN}
	}
	c.body = b
	s.Steps = c.steps(rf, stepsN, s.ID, rsc, "role "+strconv.Quote(name))
	c.body = outer
	c.stack = c.stack[:len(c.stack)-1]
	if b != nil && !b.used {
		d.Errorf(wrapped.KeyN, "%s: role %q has no body slot (- body: ...) for these steps", label, name)
	}
}

// expandPlan turns `plan: NAME` into a block of the sub-plan's steps.
func (c *loadCtx) expandPlan(f *srcFile, s *Step, kv yamldoc.Pair, paramsN ast.Node, sc *scope, label string) {
	d := f.d
	ref, ok := d.Str(kv.Val, label+" plan")
	if !ok {
		return
	}
	s.Source = "plan:" + ref
	key, lbl, pf, err := c.openPlan(ref, f.dir)
	if err != nil {
		if l, ok := diag.As(err); ok {
			c.errs = append(c.errs, l...)
		} else {
			d.Errorf(kv.Val, "%s: %v", label, err)
		}
		return
	}
	inc := include{key: key, label: lbl}
	if c.cycle(d, kv.Val, inc) {
		return
	}
	pd := pf.d
	top, _ := pd.Mapping(pf.body, "a plan")
	pd.CheckKeys(top, "a plan", planKeys...)
	subName := strings.TrimSuffix(strings.TrimSuffix(path.Base(filepath.ToSlash(ref)), ".yaml"), ".yml")
	var params []Param
	var stepsN, setsN ast.Node
	for _, p := range top {
		switch p.Key {
		case "name":
			if v, ok := pd.Str(p.Val, "name"); ok {
				subName = v
			}
		case "description":
			pd.Str(p.Val, "description")
		case "params":
			params = c.params(pf, p.Val)
		case "packages":
			setsN = p.Val
		case "steps":
			stepsN = p.Val
		}
	}
	// The include's params: declared names only, literal values typed,
	// every required param given.
	given := map[string]any{}
	if paramsN != nil {
		ps, _ := d.Mapping(paramsN, label+" params")
		for _, p := range ps {
			decl := findParam(params, p.Key)
			if decl == nil {
				d.Errorf(p.KeyN, "%s: plan %q has no param %q (it declares: %s)", label, subName, p.Key, paramNames(params))
				continue
			}
			c.templates(d, p.Val, sc)
			if str, isStr := d.Resolve(p.Val).(*ast.StringNode); isStr && strings.Contains(str.Value, "{{") {
				c.paramsOnly(d, p.Val, str.Value, fmt.Sprintf("%s param %q", label, p.Key))
				given[p.Key] = str.Value
			} else if v, ok := c.typed(d, p.Val, *decl, fmt.Sprintf("param %q of plan %q", p.Key, subName)); ok {
				given[p.Key] = v
			}
		}
	}
	for _, p := range params {
		if _, ok := given[p.Name]; !ok && p.Required {
			d.Errorf(kv.Val, "%s: plan %q requires param %q (%s)%s", label, subName, p.Name, p.Type, descSuffix(p.Description))
		}
	}
	s.Params, s.subParams = given, params
	if stepsN == nil {
		pd.Errorf(pf.body, "plan %q has no steps", subName)
		return
	}
	c.stack = append(c.stack, inc)
	psc := &scope{plan: subName, params: &params, registers: map[string]ast.Node{}}
	if setsN != nil {
		psc.sets = c.packageSets(pf, setsN, psc)
	}
	s.Steps = c.steps(pf, stepsN, s.ID, psc, "plan "+strconv.Quote(subName))
	s.subParams = params // with the params of the roles it includes
	c.stack = c.stack[:len(c.stack)-1]
}

func descSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// cycle reports (and records) an include cycle.
func (c *loadCtx) cycle(d *yamldoc.Doc, n ast.Node, inc include) bool {
	for i, e := range c.stack {
		if e.key == inc.key {
			chain := []string{}
			for _, x := range c.stack[i:] {
				chain = append(chain, x.label)
			}
			d.Errorf(n, "include cycle: %s -> %s", strings.Join(chain, " -> "), inc.label)
			return true
		}
	}
	return false
}

func findParam(ps []Param, name string) *Param {
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i]
		}
	}
	return nil
}

func paramNames(ps []Param) string {
	if len(ps) == 0 {
		return "none"
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

func indexKey(ps []yamldoc.Pair, k string) int {
	for i, p := range ps {
		if p.Key == k {
			return i
		}
	}
	return -1
}

func hasKey(ps []yamldoc.Pair, k string) bool { return indexKey(ps, k) >= 0 }

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
