package yamldoc

import (
	"bytes"
	"io"
	"io/fs"
	"os"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/diag"
)

// Limits on what one plan, role or inventory file may ask of troupe, so a
// hostile or broken file is refused with a positioned error in bounded time
// and memory instead of crashing it or exhausting the machine.
const (
	// MaxFileSize: the YAML parser takes some 85 bytes of memory per byte of
	// input; real plans and inventories are a few KiB.
	MaxFileSize = 4 << 20
	// MaxDepth: the parser and every walker of the tree recurse, so a file of
	// nothing but "[[[[..." would overflow the stack.
	MaxDepth = 256
	// MaxAliasNodes caps the nodes aliases add to a document when expanded:
	// nested aliases ("billion laughs") grow exponentially.
	MaxAliasNodes = 100_000
)

// ReadFile reads a file from fsys, or from disk when fsys is nil, keeping at
// most MaxFileSize+1 bytes: enough for Parse to refuse a larger file with a
// position, without holding all of it.
func ReadFile(fsys fs.FS, name string) ([]byte, error) {
	var f io.ReadCloser
	var err error
	if fsys == nil {
		f, err = os.Open(name)
	} else {
		f, err = fsys.Open(name)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxFileSize+1))
}

// checkSize refuses a file over MaxFileSize, pointing where it crosses it.
func checkSize(file string, src []byte) *diag.Error {
	if len(src) <= MaxFileSize {
		return nil
	}
	line, col := position(src, MaxFileSize)
	return diag.New(file, src, line, col, "file is larger than %d MiB: not a plan or inventory troupe will read", MaxFileSize>>20)
}

// checkDepth refuses collections nested deeper than MaxDepth, before the
// parser recurses into them: flow collections ("[[[[") and block ones opened
// on one line ("- - - -"). Quoted strings and comments are skipped; brackets
// in plain scalars may over-count, which only matters past the limit.
// (Nesting by indentation needs quadratic space: MaxFileSize bounds it.)
func checkDepth(file string, src []byte) *diag.Error {
	depth := 0
	var quote byte
	for i := 0; i < len(src); i++ {
		c := src[i]
		if quote == 0 && depth == 0 && (i == 0 || src[i-1] == '\n') {
			if n, at := blockIndicators(src[i:]); n > MaxDepth {
				line, col := position(src, i+at)
				return diag.New(file, src, line, col, "collections nested more than %d deep", MaxDepth)
			}
		}
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			if i == 0 || bytes.IndexByte([]byte(" \t\n[{,:-"), src[i-1]) >= 0 {
				quote = c
			}
		case c == '#' && (i == 0 || src[i-1] == ' ' || src[i-1] == '\t' || src[i-1] == '\n'):
			if j := bytes.IndexByte(src[i:], '\n'); j >= 0 {
				i += j
			} else {
				i = len(src)
			}
		case c == '[' || c == '{':
			if depth++; depth > MaxDepth {
				line, col := position(src, i)
				return diag.New(file, src, line, col, "collections nested more than %d deep", MaxDepth)
			}
		case c == ']' || c == '}':
			depth = max(depth-1, 0)
		}
	}
	return nil
}

// blockIndicators counts the block collections a line opens before its
// content ("- ", "? ", ": " in a row) and where the count passed MaxDepth.
func blockIndicators(line []byte) (n, at int) {
	i := 0
	for {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i+1 >= len(line) || bytes.IndexByte([]byte("-?:"), line[i]) < 0 || (line[i+1] != ' ' && line[i+1] != '\t') {
			return n, at
		}
		if n++; n == MaxDepth+1 {
			at = i
		}
		i += 2
	}
}

// position is the 1-based line and column (in runes) of byte offset off.
func position(src []byte, off int) (int, int) {
	off = min(off, len(src))
	line := 1 + bytes.Count(src[:off], []byte("\n"))
	start := bytes.LastIndexByte(src[:off], '\n') + 1
	return line, 1 + len([]rune(string(src[start:off])))
}

// checkAliases refuses an alias inside its own anchor (expanding it never
// ends) and documents whose aliases add more than MaxAliasNodes nodes. Sizes
// are computed once per anchor, so the check is linear in the file.
func (d *Doc) checkAliases(body ast.Node) *diag.Error {
	var bad *diag.Error
	size := map[string]int{} // anchor → nodes of its value, aliases expanded
	open := map[string]bool{}
	var expanded func(n ast.Node) int
	expanded = func(n ast.Node) int {
		if bad != nil || n == nil {
			return 0
		}
		if a, ok := n.(*ast.AliasNode); ok {
			name := a.Value.GetToken().Value
			if s, ok := size[name]; ok {
				return s
			}
			target, ok := d.anchors[name]
			if !ok {
				return 1
			}
			if open[name] {
				bad = d.At(a, "alias *%s is inside its own anchor &%s: a recursive alias cannot be expanded", name, name)
				return 0
			}
			open[name] = true
			s := expanded(target)
			delete(open, name)
			size[name] = s
			return s
		}
		total := 1
		for _, c := range children(n) {
			total = min(total+expanded(c), MaxAliasNodes+1) // saturate: sizes grow exponentially
		}
		return total
	}
	added := 0
	var walk func(n ast.Node)
	walk = func(n ast.Node) {
		if bad != nil || n == nil {
			return
		}
		if a, ok := n.(*ast.AliasNode); ok {
			if added += expanded(a); added > MaxAliasNodes && bad == nil {
				bad = d.At(a, "aliases expand this file to more than %d nodes (aliases of aliases?)", MaxAliasNodes)
			}
			return
		}
		for _, c := range children(n) {
			walk(c)
		}
	}
	walk(body)
	return bad
}

// children are the nodes directly under n.
func children(n ast.Node) []ast.Node {
	switch v := n.(type) {
	case *ast.MappingNode:
		out := make([]ast.Node, len(v.Values))
		for i, kv := range v.Values {
			out[i] = kv
		}
		return out
	case *ast.MappingValueNode:
		return []ast.Node{v.Key, v.Value}
	case *ast.MappingKeyNode:
		return []ast.Node{v.Value}
	case *ast.SequenceNode:
		return v.Values
	case *ast.AnchorNode:
		return []ast.Node{v.Value}
	case *ast.TagNode:
		return []ast.Node{v.Value}
	case *ast.DocumentNode:
		return []ast.Node{v.Body}
	}
	return nil
}
