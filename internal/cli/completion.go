package cli

import (
	"os"

	"github.com/alecthomas/kong"

	"github.com/troupe/troupe/internal/completion"
)

// CompletionCmd prints a shell completion script for this command tree.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

func (c CompletionCmd) Run(k *kong.Kong) error {
	return completion.Write(os.Stdout, c.Shell, k.Model.Name, completion.FromKong(k.Model.Node))
}
