package cli

import (
	"fmt"
	"os"

	"github.com/troupe/troupe/internal/buildinfo"
)

// VersionCmd prints which troupe this is (see package buildinfo).
type VersionCmd struct {
	Short bool `help:"Print the version alone."`
}

func (c VersionCmd) Run() error {
	in := buildinfo.Read()
	if c.Short {
		_, err := fmt.Println(in.Version)
		return err
	}
	commit := in.Commit
	if in.Modified {
		commit += " (modified)"
	}
	_, err := fmt.Fprintf(os.Stdout, "troupe %s\ncommit: %s\ngo:     %s %s/%s\n", in.Version, commit, in.Go, in.OS, in.Arch)
	return err
}
