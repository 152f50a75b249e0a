package lab

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	controlrepo "github.com/troupe/troupe/fixtures/control-repo"
)

// controlBranches are built in this order; each later branch's commit has the
// previous one as parent.
var controlBranches = []string{"production", "development"}

// buildControlRepo makes a bare git repository at dst from the embedded
// fixture (fixtures/control-repo/<branch>/ = that branch's whole tree), with
// a fixed author, committer and date so the commit ids are reproducible, and
// prepares it for git's dumb HTTP protocol (update-server-info).
func buildControlRepo(ctx context.Context, dst string) error {
	env := append(os.Environ(),
		"GIT_AUTHOR_NAME=troupe lab", "GIT_AUTHOR_EMAIL=lab@lab.test", "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z",
		"GIT_COMMITTER_NAME=troupe lab", "GIT_COMMITTER_EMAIL=lab@lab.test", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z",
		"GIT_CONFIG_NOSYSTEM=1", "HOME=/nonexistent", "LC_ALL=C")
	git := func(dir string, extraEnv []string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Env = append(append([]string{}, env...), extraEnv...)
		cmd.Dir = dir
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, errb.String())
		}
		return strings.TrimSpace(out.String()), nil
	}
	if _, err := git("/", nil, "init", "-q", "--bare", "-b", "production", dst); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".control-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	parent := ""
	for _, br := range controlBranches {
		tree := filepath.Join(tmp, br)
		sub, err := fs.Sub(controlrepo.FS, br)
		if err != nil {
			return err
		}
		if err := os.CopyFS(tree, sub); err != nil {
			return err
		}
		genv := []string{"GIT_DIR=" + dst, "GIT_WORK_TREE=" + tree, "GIT_INDEX_FILE=" + filepath.Join(tmp, br+".index")}
		if _, err := git(tree, genv, "add", "-A", "."); err != nil {
			return err
		}
		treeID, err := git(tree, genv, "write-tree")
		if err != nil {
			return err
		}
		args := []string{"commit-tree", treeID, "-m", "control repository, branch " + br}
		if parent != "" {
			args = append(args, "-p", parent)
		}
		commit, err := git(tree, genv, args...)
		if err != nil {
			return err
		}
		if _, err := git(tree, genv, "update-ref", "refs/heads/"+br, commit); err != nil {
			return err
		}
		parent = commit
	}
	_, err = git(dst, []string{"GIT_DIR=" + dst}, "update-server-info")
	return err
}
