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
		"changed_when", "failed_when", "ignore_errors", "ignore_unreachable", "vars", "params"}
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
