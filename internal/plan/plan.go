// Package plan decodes and checks plans and roles: YAML data that lists the
// steps of a job. Everything is checked before any connection is made, and
// every problem is reported as a positioned diag.Error.
//
// A plan:
//
//	name: upgrade-compilers
//	description: Rolling upgrade of the compiler pool behind HAProxy
//	params:
//	  version: {type: string, required: true, description: "..."}
//	  db_password: {type: secret}
//	  certname: {type: certname}          # Puppet's certname rules; serial: hex
//	steps:
//	  - id: preflight                     # kebab-case, unique within its block
//	    name: Check every host            # optional sentence for the report
//	    targets: all                      # inventory selector (see inventory.Select)
//	    role: preflight                   # include roles/preflight.yaml
//	    vars: {heap: 2g}                  # vars for the role's templates
//	  - id: compilers
//	    targets: compilers
//	    serial: 1                         # or "25%": rolling batches
//	    max_failures: 0                   # or "10%"
//	    steps:                            # a block; child ids become compilers/drain ...
//	      - {id: drain, lb_server: {state: drain}}
//	      - {id: upgrade, package: {names: [puppetserver], version: "{{ .params.version }}"}}
//
// Targets are a selector, or {host: NAME}: exactly the inventory host of
// that name. A targets template, and a sub-plan's params, are rendered with
// the params alone (TargetsData): they are decided before any host is.
//
// Step controls: when, serial, max_failures, retries, delay, until, timeout,
// run_once, sudo, creates, unless, onlyif, register, changed_when,
// failed_when, ignore_errors, ignore_unreachable (on a block: for every
// step inside that does not set its own). Exactly one of: an action key
// (registered by package step), `steps` (a block), `role`, or `plan` (a
// sub-plan, with `params`). Roles have the shape of plans without
// `packages`: their `vars` hold defaults, their `params` join the including
// plan's, and a role's `- body: DESCRIPTION` item is where the including
// step's own `steps` go (a role include may carry `steps`; see wrap.go). A
// plan's `packages` name package sets once; an action with parts takes
// `set: NAME`.
package plan

import (
	"io/fs"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Plan is a loaded and checked plan with its roles and sub-plans expanded.
type Plan struct {
	Name        string
	Description string
	File        string // where it was read from ("embedded:plans/x.yaml" or a disk path)
	Params      []Param
	Steps       []*Step

	sources map[string][]byte // file name -> source, for positioned errors later
}

// Param is one declared plan parameter.
type Param struct {
	Name        string
	Type        string // string | int | bool | list | map | secret | certname | serial
	Description string
	Default     any  // nil when none
	Required    bool // required params have no default
	Pos         Pos
}

// Step is one step, a block, or an expanded role/sub-plan (both become blocks).
type Step struct {
	ID   string // full hierarchical id: "compilers/drain"
	Name string // title sentence; defaults to a readable form of the action

	Targets     string // selector; "" inherits the parent block's hosts
	TargetHost  bool   // Targets names exactly one inventory host ({host: NAME}), never a group, alias or glob
	DelegateTo  string // selector: run the action on these hosts, for each target, in the target's scope ("" inherits the block's)
	When        string // template; the step runs where it renders "true"
	Serial      string // "" (all at once), "N" or "N%"
	MaxFailures string // "" (0), "N" or "N%"
	Retries     int
	Delay       time.Duration
	Until       string // template evaluated after each try; retry until "true"
	Timeout     time.Duration
	RunOnce     bool
	Sudo        *bool // nil inherits the host's ssh.sudo
	Creates     string
	Unless      string
	Onlyif      string
	Register    string
	ChangedWhen string
	FailedWhen  string

	IgnoreErrors bool
	// IgnoreUnreachable: the hosts the action runs on may be down (see
	// controlNotes): its own, else its nearest enclosing block's.
	IgnoreUnreachable bool

	// Exactly one of these is set.
	Kind   string // action key, e.g. "command"; "" for a block
	Action any    // the decoded action spec (from Actions.Decode)
	Steps  []*Step

	// Scope overlays for an expanded role (Vars) or sub-plan (Params). Values
	// may be templates, rendered against the enclosing scope at run time.
	Vars     map[string]any // the include's vars: above inventory vars
	Defaults map[string]any // a role's own vars: defaults below inventory vars
	Params   map[string]any // as written; see SubParams
	Source   string         // "role:NAME" or "plan:NAME" for expanded includes, else ""

	subParams []Param   // a sub-plan's declared params
	reads     []regRead // .registered references of this step's own templates (a block's: when, vars, serial)

	Pos Pos // where the step starts, for run-time error messages

	targetsPos  Pos // where `targets` is written
	delegatePos Pos // where `delegate_to` is written

	unreachableSet bool // ignore_unreachable is written on this step, not inherited
}

// Pos is a place in a plan or role file.
type Pos struct {
	File string
	Line int
	Col  int
}

// Actions decodes action bodies; package step implements it. Decode must be
// strict (unknown keys rejected) and return goccy yaml errors (with tokens)
// or *diag.Error so problems stay positioned.
type Actions interface {
	Kinds() []string
	Decode(kind string, node ast.Node) (any, error)
}

// SourceChecker is implemented by an Actions whose actions read local files
// (upload, template and script sources): CheckSource reads (and for
// templates parses) them from the plans' content, so `plan validate` finds a
// missing or broken source.
type SourceChecker interface {
	CheckSource(action any, fsys fs.FS) error
}
