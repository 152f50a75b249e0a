package cli

import "github.com/alecthomas/kong"

// Description is troupe's one-line summary (help, man page, package).
const Description = "Run YAML plans over SSH to build and operate a load-balanced Puppet site."

// KongOptions name and describe the command tree: main parses with them, and
// the release builder reads the same tree for the man page and completions.
func KongOptions() []kong.Option {
	return []kong.Option{
		kong.Name("troupe"),
		kong.Description(Description),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	}
}

// New builds the command tree without parsing anything.
func New() (*kong.Kong, error) { return kong.New(&CLI{}, KongOptions()...) }
