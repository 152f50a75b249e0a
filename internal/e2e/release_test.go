package e2e

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/release"
)

// releaseScenario installs the release .deb on a lab host as an operator
// would (copy, dpkg -i) and runs troupe there: the version is the one built,
// the built-in plans are listed, dpkg knows the man page and completions;
// then dpkg -r leaves the host as it was for the next scenario.
func releaseScenario(ctx context.Context, t *testing.T, s *site) {
	const host = "agent1" // lab hosts run this machine's architecture
	r, err := release.Build(ctx, release.Options{Root: repoRoot(t), Out: t.TempDir(), Arches: []string{runtime.GOARCH}})
	if err != nil {
		t.Fatal(err)
	}
	debFile := r.Debs[runtime.GOARCH]
	t.Logf("built %s (troupe %s, commit %s)", filepath.Base(debFile), r.Version, r.Commit)

	// copy it in, and check it arrived whole against SHA256SUMS
	f, err := os.Open(debFile)
	if err != nil {
		t.Fatal(err)
	}
	cp := s.l.SSHCommand(host, "cat > /tmp/troupe.deb")
	cp.Stdin = f
	out, err := cp.CombinedOutput()
	f.Close()
	if err != nil {
		t.Fatalf("copying the .deb to %s: %v\n%s", host, err, out)
	}
	sums, err := os.ReadFile(r.Sums)
	if err != nil {
		t.Fatal(err)
	}
	remote := strings.Fields(s.ssh(host, "sha256sum /tmp/troupe.deb"))
	if len(remote) == 0 || !strings.Contains(string(sums), remote[0]+"  "+filepath.Base(debFile)+"\n") {
		t.Fatalf("the .deb on %s (%v) is not the one in SHA256SUMS:\n%s", host, remote, sums)
	}

	if out, rc := s.sshRC(host, "dpkg -i /tmp/troupe.deb"); rc != 0 {
		t.Fatalf("dpkg -i on %s:\n%s", host, out)
	}
	removed := false
	defer func() {
		if !removed {
			s.ssh(host, "dpkg -r troupe; rm -f /tmp/troupe.deb")
		}
	}()

	if got := strings.TrimSpace(s.ssh(host, "dpkg-query -W -f '${Status} ${Version}' troupe")); got != "install ok installed "+r.DebVersion {
		t.Errorf("dpkg-query: %q, want installed %s", got, r.DebVersion)
	}
	if got := strings.TrimSpace(s.ssh(host, "troupe version --short")); got != r.Version {
		t.Errorf("troupe version --short on %s = %q, want %q (the version built)", host, got, r.Version)
	}
	if got := s.ssh(host, "troupe version"); !strings.Contains(got, "commit: "+r.Commit) || !strings.Contains(got, "linux/"+runtime.GOARCH) {
		t.Errorf("troupe version on %s:\n%s\nwant commit %s, linux/%s", host, got, r.Commit, runtime.GOARCH)
	}
	// from a directory without plans/: the built-in ones
	list, rc := s.sshRC(host, "cd /tmp && troupe plan list")
	if rc != 0 {
		t.Fatalf("troupe plan list on %s:\n%s", host, list)
	}
	for _, plan := range []string{"bootstrap", "upgrade", "add-compiler", "ca-renew"} {
		if !strings.Contains("\n"+list, "\n"+plan+" ") {
			t.Errorf("troupe plan list on %s lacks %s:\n%s", host, plan, list)
		}
	}
	files := s.ssh(host, "dpkg -L troupe")
	for _, p := range []string{release.BinPath, release.ManPath, release.BashPath, release.ZshPath, release.FishPath} {
		if !strings.Contains(files+"\n", p+"\n") {
			t.Errorf("dpkg -L troupe lacks %s:\n%s", p, files)
		}
	}
	if got := s.ssh(host, "zcat "+release.ManPath+" | grep -c -e '^.TH TROUPE 1' -e '^.SS \"troupe plan list\"'"); strings.TrimSpace(got) != "2" {
		t.Errorf("man page on %s: %q", host, got)
	}
	if got, rc := s.sshRC(host, "bash -c '. "+release.BashPath+" && complete -p troupe'"); rc != 0 || !strings.Contains(got, "troupe") {
		t.Errorf("bash completion on %s: %s", host, got)
	}

	if out, rc := s.sshRC(host, "dpkg -r troupe && rm -f /tmp/troupe.deb && ! command -v troupe && ! test -e "+release.ManPath); rc != 0 {
		t.Errorf("dpkg -r troupe on %s left something:\n%s", host, out)
	}
	removed = true
}
