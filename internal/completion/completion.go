// Package completion writes bash, zsh and fish completion scripts from a
// kong command tree, so every command and flag the parser knows completes,
// and nothing needs updating by hand when one is added. The scripts are
// static: they complete commands, flags and enum values, and fall back to
// file names; nothing calls back into troupe at completion time.
package completion

import (
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"
)

// Command is one command of the tree, flattened for the generators.
type Command struct {
	Path  string // words after the program name: "" for the root, "inventory graph"
	Subs  []Word // subcommands, then the enum values of its first positional argument
	Flags []Flag // its own flags and the ones it inherits
}

// Word is a completion candidate with its help.
type Word struct{ Name, Help string }

// Flag is one flag.
type Flag struct {
	Long  string
	Short string // "" when none
	Help  string
	Value bool     // takes a value (not a bool flag)
	Enum  []string // allowed values, when the flag lists them
	Own   bool     // declared on this command, not inherited
}

// FromKong flattens the visible commands under root.
func FromKong(root *kong.Node) []Command {
	var out []Command
	var walk func(n *kong.Node, path string)
	walk = func(n *kong.Node, path string) {
		c := Command{Path: path}
		for _, ch := range n.Children {
			if !ch.Hidden && ch.Type == kong.CommandNode {
				c.Subs = append(c.Subs, Word{ch.Name, ch.Help})
			}
		}
		if len(n.Positional) > 0 && n.Positional[0].Enum != "" {
			for _, v := range n.Positional[0].EnumSlice() {
				c.Subs = append(c.Subs, Word{Name: v})
			}
		}
		// own flags first, then the inherited ones (n.AllFlags would also
		// mark them active in the parser's model)
		for p := n; p != nil; p = p.Parent {
			for _, f := range p.Flags {
				if f.Hidden {
					continue
				}
				fl := Flag{Long: f.Name, Help: f.Help, Value: !f.IsBool() && !f.IsCounter(), Own: p == n}
				if f.Short != 0 {
					fl.Short = string(f.Short)
				}
				if f.Enum != "" {
					fl.Enum = f.EnumSlice()
				}
				c.Flags = append(c.Flags, fl)
			}
		}
		out = append(out, c)
		for _, ch := range n.Children {
			if !ch.Hidden && ch.Type == kong.CommandNode {
				walk(ch, strings.TrimSpace(path+" "+ch.Name))
			}
		}
	}
	walk(root, "")
	return out
}

// Shells are the shells Write knows.
var Shells = []string{"bash", "zsh", "fish"}

// Write writes the completion script for shell.
func Write(w io.Writer, shell, prog string, cmds []Command) error {
	var b strings.Builder
	switch shell {
	case "bash":
		bash(&b, prog, cmds)
	case "zsh":
		zsh(&b, prog, cmds)
	case "fish":
		fish(&b, prog, cmds)
	default:
		return fmt.Errorf("unknown shell %q (one of %s)", shell, strings.Join(Shells, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// sq quotes s for bash and zsh single quotes.
func sq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// fq quotes s for fish single quotes.
func fq(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

// paths is "|run|plan|plan list|…|": the shell loops read the command path
// from the words typed so far by keeping only words that extend a known
// path, so flag values and file names are skipped without knowing arities.
func paths(cmds []Command) string {
	var ps []string
	for _, c := range cmds[1:] {
		ps = append(ps, c.Path)
	}
	return "|" + strings.Join(ps, "|") + "|"
}

func funcName(prog string) string { return "_" + strings.NewReplacer("-", "_", ".", "_").Replace(prog) }

// flagWords are a command's flags as typed: --long and -s.
func flagWords(c Command) []string {
	var out []string
	for _, f := range c.Flags {
		out = append(out, "--"+f.Long)
		if f.Short != "" {
			out = append(out, "-"+f.Short)
		}
	}
	return out
}

func names(ws []Word) []string {
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.Name)
	}
	return out
}

// enumCases are case patterns matching "PATH|FLAG" for flags with enum
// values, written once where the flag is declared: PATH* covers the
// commands below that inherit it.
func enumCases(c Command, each func(pattern string, values []string)) {
	for _, f := range c.Flags {
		if len(f.Enum) == 0 || !f.Own {
			continue
		}
		each(sq(c.Path)+"*"+sq("|--"+f.Long), f.Enum)
		if f.Short != "" {
			each(sq(c.Path)+"*"+sq("|-"+f.Short), f.Enum)
		}
	}
}

// pathLoop sets $cmdpath from the words before the cursor, for bash and zsh
// alike; head is what follows "for" and sets $w.
func pathLoop(b *strings.Builder, cmds []Command, head string) {
	fmt.Fprintf(b, "    local paths=%s\n    for %s\n", sq(paths(cmds)), head)
	b.WriteString(`        [[ $w == -* ]] && continue
        [[ $paths == *"|${cmdpath:+$cmdpath }$w|"* ]] && cmdpath=${cmdpath:+$cmdpath }$w
    done
`)
}

func bash(b *strings.Builder, prog string, cmds []Command) {
	fn := funcName(prog)
	fmt.Fprintf(b, "# bash completion for %s (generated by `%s completion bash`)\n", prog, prog)
	fmt.Fprintf(b, "%s() {\n", fn)
	b.WriteString("    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmdpath='' w i\n")
	pathLoop(b, cmds, "((i = 1; i < COMP_CWORD; i++)); do\n        w=${COMP_WORDS[i]}")
	b.WriteString("    case \"$cmdpath|$prev\" in\n")
	for _, c := range cmds {
		enumCases(c, func(pattern string, values []string) {
			fmt.Fprintf(b, "    %s) COMPREPLY=($(compgen -W %s -- \"$cur\")); return ;;\n", pattern, sq(strings.Join(values, " ")))
		})
	}
	b.WriteString("    esac\n    local words='' flags=''\n    case $cmdpath in\n")
	for _, c := range cmds {
		fmt.Fprintf(b, "    %s) words=%s flags=%s ;;\n", sq(c.Path), sq(strings.Join(names(c.Subs), " ")), sq(strings.Join(flagWords(c), " ")))
	}
	b.WriteString(`    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
}
`)
	fmt.Fprintf(b, "complete -o default -F %s %s\n", fn, prog)
}

func zsh(b *strings.Builder, prog string, cmds []Command) {
	fn := funcName(prog)
	fmt.Fprintf(b, "#compdef %s\n# zsh completion for %s (generated by `%s completion zsh`)\n", prog, prog, prog)
	fmt.Fprintf(b, "%s() {\n", fn)
	// not "path": zsh ties that name to $PATH
	b.WriteString("    local cmdpath='' w\n")
	pathLoop(b, cmds, `w in "${(@)words[2,CURRENT-1]}"; do`)
	b.WriteString("    case \"$cmdpath|${words[CURRENT-1]}\" in\n")
	for _, c := range cmds {
		enumCases(c, func(pattern string, values []string) {
			fmt.Fprintf(b, "    (%s) compadd -- %s; return ;;\n", pattern, strings.Join(values, " "))
		})
	}
	b.WriteString("    esac\n    local -a subs flags\n    case $cmdpath in\n")
	for _, c := range cmds {
		var subs, flags []string
		for _, s := range c.Subs {
			subs = append(subs, sq(describe(s.Name, s.Help)))
		}
		for _, f := range c.Flags {
			flags = append(flags, sq(describe("--"+f.Long, f.Help)))
			if f.Short != "" {
				flags = append(flags, sq(describe("-"+f.Short, f.Help)))
			}
		}
		fmt.Fprintf(b, "    (%s)\n        subs=(%s)\n        flags=(%s) ;;\n", sq(c.Path), strings.Join(subs, " "), strings.Join(flags, " "))
	}
	b.WriteString(`    esac
    if [[ $PREFIX == -* ]]; then
        _describe -t flags flag flags
    elif (( ${#subs} )); then
        _describe -t commands command subs
    else
        _files
    fi
}
`)
	fmt.Fprintf(b, "if [[ $funcstack[1] == %s ]]; then\n    %s \"$@\"\nelse\n    compdef %s %s\nfi\n", fn, fn, fn, prog)
}

// describe is a _describe entry: colons in the name are escaped.
func describe(name, help string) string {
	name = strings.ReplaceAll(name, ":", `\:`)
	if help == "" {
		return name
	}
	return name + ":" + help
}

func fish(b *strings.Builder, prog string, cmds []Command) {
	fn := "__" + strings.TrimPrefix(funcName(prog), "_") + "_path"
	fmt.Fprintf(b, "# fish completion for %s (generated by `%s completion fish`)\n", prog, prog)
	fmt.Fprintf(b, "function %s --description 'is the command typed so far exactly $argv[1]?'\n", fn)
	var ps []string
	for _, c := range cmds[1:] {
		ps = append(ps, fq(c.Path))
	}
	fmt.Fprintf(b, "    set -l paths %s\n", strings.Join(ps, " "))
	b.WriteString(`    set -l toks (commandline -opc)
    set -e toks[1]
    set -l cmdpath
    for w in $toks
        string match -q -- '-*' $w; and continue
        contains -- (string join ' ' $cmdpath $w) $paths; and set cmdpath $cmdpath $w
    end
    set -l got (string join ' ' $cmdpath)
    test "$argv[1]" = "$got"
end
`)
	for _, c := range cmds {
		cond := fmt.Sprintf("-n %s", fq(fn+" "+fq(c.Path)))
		for _, s := range c.Subs {
			fmt.Fprintf(b, "complete -c %s %s -f -a %s", prog, cond, fq(s.Name))
			if s.Help != "" {
				fmt.Fprintf(b, " -d %s", fq(s.Help))
			}
			b.WriteString("\n")
		}
		for _, f := range c.Flags {
			fmt.Fprintf(b, "complete -c %s %s -l %s", prog, cond, f.Long)
			if f.Short != "" {
				fmt.Fprintf(b, " -s %s", f.Short)
			}
			switch {
			case len(f.Enum) > 0:
				fmt.Fprintf(b, " -x -a %s", fq(strings.Join(f.Enum, " ")))
			case f.Value:
				b.WriteString(" -r")
			}
			fmt.Fprintf(b, " -d %s\n", fq(f.Help))
		}
	}
}
