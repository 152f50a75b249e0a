package step

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// kinds is every action a step can name, one line each. The order of work
// comes from plans; this table only says what each key means.
var kinds = map[string]func() Action{
	// generic
	"command":       func() Action { return &Command{} },      // run a shell command
	"script":        func() Action { return &Script{} },       // run a script (inline or from files/) through an interpreter
	"upload":        func() Action { return &Upload{} },       // write a file atomically, only when it differs
	"download":      func() Action { return &Download{} },     // fetch a remote file into a local directory
	"template":      func() Action { return &Template{} },     // render a Go template locally, write it only on change
	"file":          func() Action { return &File{} },         // a directory, an empty file, or nothing at a path
	"package":       func() Action { return &Package{} },      // apt or dnf packages, with version pins
	"package_facts": func() Action { return &PackageFacts{} }, // installed, offered and target versions, holds; read-only
	"service":       func() Action { return &Service{} },      // systemctl start/stop/restart/reload/enable; a failed start, restart or reload shows the unit's last journal lines
	"wait":          func() Action { return &Wait{} },         // a TCP port, an HTTP(S) answer, or a command, until a timeout
	"message":       func() Action { return &Message{} },      // print a line
	"assert":        func() Action { return &Assert{} },       // fail unless every condition is true
	"fail":          func() Action { return &Fail{} },         // fail with a message
	// puppet site
	"puppet_config":      func() Action { return &PuppetConfig{} },     // read settings with `puppet config print` (paths per host)
	"puppet_ini":         func() Action { return &PuppetIni{} },        // ensure keys in puppet.conf-style INI files, keep the rest
	"puppet_cert":        func() Action { return &PuppetCert{} },       // a CA-signed cert with exactly the expected names, CSR checked before signing
	"puppet_crl":         func() Action { return &PuppetCRL{} },        // copy the CA's full CRL to this host's hostcrl, checked (CA, not older)
	"puppet_ca_renew":    func() Action { return &PuppetCARenew{} },    // sign the CA certificates again with their own keys (on the CA host), checked before they replace ca_crt.pem
	"puppet_ca_bundle":   func() Action { return &PuppetCABundle{} },   // copy the CA's bundle to this host, only the same CAs with the same keys
	"puppet_cert_expiry": func() Action { return &PuppetCertExpiry{} }, // not-after of the CA bundle, CRLs and signed/ certificates, soonest first; read-only
	"puppet_code":        func() Action { return &PuppetCode{} },       // r10k deploy when commits differ; reports commit per environment
	"lb_server":          func() Action { return &LBServer{} },         // HAProxy runtime API: ready/drain/maint on every LB, waits for it
}

// Shorthand is implemented by actions that accept a plain string body
// (`command: "uptime"`, `message: "hi"`, `fail: "why"`).
type Shorthand interface{ SetString(string) }

// Validator is implemented by actions with rules beyond their YAML shape.
type Validator interface{ Validate() error }

// Sourced is implemented by actions that read a local file (src), so that a
// missing or broken source is found when the plan is loaded, not on a host.
type Sourced interface{ CheckSource(fsys fs.FS) error }

// Registry decodes action bodies for package plan.
type Registry struct{}

// Kinds lists the action keys, sorted.
func (Registry) Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// New returns a zero Action of a kind (for tools that describe the kinds,
// such as the JSON Schema), or false for an unknown kind.
func (Registry) New(kind string) (Action, bool) {
	mk, ok := kinds[kind]
	if !ok {
		return nil, false
	}
	return mk(), true
}

// Decode turns an action body into its Action, strictly (unknown keys are
// errors) and with positioned errors.
func (Registry) Decode(kind string, node ast.Node) (any, error) {
	mk, ok := kinds[kind]
	if !ok {
		return nil, &yaml.SyntaxError{Message: fmt.Sprintf("unknown action %q", kind), Token: node.GetToken()}
	}
	a := mk()
	if s, isStr := scalarString(node); isStr {
		sh, ok := a.(Shorthand)
		if !ok {
			return nil, &yaml.SyntaxError{Message: fmt.Sprintf("%s: want a mapping, not a string", kind), Token: node.GetToken()}
		}
		sh.SetString(s)
	} else if err := yaml.NodeToValue(node, a, yaml.Strict()); err != nil {
		return nil, err
	}
	if v, ok := a.(Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, &yaml.SyntaxError{Message: fmt.Sprintf("%s: %v", kind, err), Token: node.GetToken()}
		}
	}
	return a, nil
}

// CheckSource checks the local file an action reads (plan.SourceChecker).
func (Registry) CheckSource(action any, fsys fs.FS) error {
	if s, ok := action.(Sourced); ok {
		return s.CheckSource(fsys)
	}
	return nil
}

// scalarString is a plain, quoted or block (| or >) string scalar.
func scalarString(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	}
	return "", false
}

// Title is the action's default title: its own, or its kind.
func Title(kind string, a any) string {
	if t, ok := a.(Titler); ok {
		return t.Title()
	}
	return strings.ReplaceAll(kind, "_", " ")
}
