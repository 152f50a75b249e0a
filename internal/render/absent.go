package render

import (
	"errors"
	"text/template"
	tparse "text/template/parse"
)

// AbsentError is a template that failed and reads a top-level key its data
// does not hold. A scope built before a run leaves out what is not known
// yet (.registered): the runner tells such a failure from a broken template
// by this type and its Key, found in the template's parse tree, never in
// the error's text. Error is the template's own error, unchanged.
type AbsentError struct {
	Key string // the top-level key, without its dot
	Err error
}

func (e *AbsentError) Error() string { return e.Err.Error() }
func (e *AbsentError) Unwrap() error { return e.Err }

// absent is err (the failed execution of t against data), or an
// *AbsentError wrapping it when t reads a top-level key that data, a map,
// does not hold. The first such key in the text is named.
func absent(t *template.Template, data any, execErr, err error) error {
	m, ok := data.(map[string]any)
	var ee template.ExecError
	if !ok || !errors.As(execErr, &ee) {
		return err // not a map, or not the template's fault (its output too large)
	}
	key := ""
	for _, tr := range t.Templates() {
		if tr.Tree == nil {
			continue
		}
		rootReads(tr.Tree.Root, true, func(idents []string) {
			if _, held := m[idents[0]]; key == "" && !held {
				key = idents[0]
			}
		})
	}
	if key == "" {
		return err
	}
	return &AbsentError{Key: key, Err: err}
}

// rootReads calls read with the field chain of every reference to the
// root data: `.a.b` while dot is the root, and `$.a.b` anywhere. (The
// loader has the same walk for its checks: plan.walkTemplate.)
func rootReads(n tparse.Node, rootDot bool, read func(idents []string)) {
	switch v := n.(type) {
	case *tparse.ListNode:
		if v == nil {
			return
		}
		for _, x := range v.Nodes {
			rootReads(x, rootDot, read)
		}
	case *tparse.ActionNode:
		rootReads(v.Pipe, rootDot, read)
	case *tparse.PipeNode:
		if v == nil {
			return
		}
		for _, cmd := range v.Cmds {
			rootReads(cmd, rootDot, read)
		}
	case *tparse.CommandNode:
		for _, a := range v.Args {
			rootReads(a, rootDot, read)
		}
	case *tparse.FieldNode:
		if rootDot && len(v.Ident) > 0 {
			read(v.Ident)
		}
	case *tparse.VariableNode:
		if len(v.Ident) > 1 && v.Ident[0] == "$" {
			read(v.Ident[1:])
		}
	case *tparse.ChainNode:
		rootReads(v.Node, rootDot, read)
	case *tparse.IfNode:
		readBranch(&v.BranchNode, rootDot, rootDot, read)
	case *tparse.RangeNode:
		readBranch(&v.BranchNode, false, rootDot, read)
	case *tparse.WithNode:
		readBranch(&v.BranchNode, false, rootDot, read)
	case *tparse.TemplateNode:
		rootReads(v.Pipe, rootDot, read)
	}
}

// readBranch: the pipeline and the else branch see the outer dot; the body
// sees it only for `if` (range and with move dot).
func readBranch(b *tparse.BranchNode, bodyRoot, outer bool, read func([]string)) {
	rootReads(b.Pipe, outer, read)
	rootReads(b.List, bodyRoot, read)
	rootReads(b.ElseList, outer, read)
}
