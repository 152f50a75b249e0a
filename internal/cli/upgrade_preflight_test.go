package cli_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/sshtest"
)

// TestUpgradePreflightAgentNewer runs the shipped upgrade plan with the
// real binary against the in-process SSH server, every host of the site
// this machine under another name, apt a script: an agent package whose
// newest version has a higher major than the server's is refused at the
// preflight, before anything changes. The control: the same site offered
// an agent of the server's major gets past that check (and stops later, at
// the health check no puppetserver here can pass: the test stops the run
// once the check's results are in).
func TestUpgradePreflightAgentNewer(t *testing.T) {
	for _, tc := range []struct {
		agent, want string // the check's status on the CA and the compiler
	}{
		{"8.10.0-1", "failed"},
		{"7.24.0-1", "ok"},
	} {
		t.Run(tc.agent, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			policy := fmt.Sprintf(`puppetserver:
  Installed: 7.9.5-1
  Candidate: 7.9.5-1
  Version table:
 *** 7.9.5-1 500
        100 /var/lib/dpkg/status
puppet-agent:
  Installed: 7.23.0-1
  Candidate: %[1]s
  Version table:
     %[1]s 500
        500 http://packages.example ./ Packages
 *** 7.23.0-1 500
        100 /var/lib/dpkg/status
puppet-terminus-puppetdb:
  Installed: 7.12.1-1
  Candidate: 7.12.1-1
  Version table:
 *** 7.12.1-1 500
        100 /var/lib/dpkg/status
puppetdb:
  Installed: 7.12.1-1
  Candidate: 7.12.1-1
  Version table:
 *** 7.12.1-1 500
        100 /var/lib/dpkg/status
`, tc.agent)
			write(t, filepath.Join(dir, "policy"), policy)
			for name, script := range map[string]string{
				"apt-get":   "#!/bin/sh\nexit 0\n",
				"apt-cache": "#!/bin/sh\ncat " + filepath.Join(dir, "policy") + "\n",
				"apt-mark":  "#!/bin/sh\nexit 0\n",
			} {
				write(t, filepath.Join(bin, name), script)
				if err := os.Chmod(filepath.Join(bin, name), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
			srv := sshtest.StartServer(t)
			var groups strings.Builder
			for _, g := range []struct{ group, host string }{{"ca", "ca"}, {"compilers", "compile1"}, {"puppetdb", "puppetdb"}, {"loadbalancer", "lb"}} {
				// one machine, many names: each its own lock file
				fmt.Fprintf(&groups, "  %s: {targets: [{name: %s.lab.test, address: 127.0.0.1, vars: {troupe_lock: %s}}]}\n",
					g.group, g.host, filepath.Join(dir, g.host+".lock"))
			}
			inv := filepath.Join(dir, "inventory.yaml")
			write(t, inv, fmt.Sprintf("version: 1\nvars: {flavor: debian}\nconfig:\n  ssh: {user: %s, port: %d, private_key: %s, known_hosts: %s}\ngroups:\n%s",
				srv.Config.User, srv.Port, srv.KeyFile, srv.KnownHosts, groups.String()))
			cmd := exec.Command(troupeBin, "--content", filepath.Join(dir, "none"), "--state-dir", filepath.Join(dir, "state"),
				"--color", "never", "run", "upgrade", "-i", inv, "--format", "json")
			cmd.Env = append(os.Environ(), "HOME="+dir)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer cmd.Process.Kill()
			var seen []string
			got := map[string]string{} // host → the check's status
			sc := bufio.NewScanner(out)
			for sc.Scan() && len(got) < 2 {
				var e struct{ Event, Step, Host, Status, Error string }
				if json.Unmarshal(sc.Bytes(), &e) != nil || e.Event != "host_result" {
					continue
				}
				seen = append(seen, e.Step+" "+e.Host+" "+e.Status)
				if e.Status == "changed" {
					t.Errorf("the preflight changed something: %s on %s", e.Step, e.Host)
				}
				if e.Step == "preflight/agent-not-newer" {
					got[e.Host] = e.Status
					if tc.want == "failed" && !strings.Contains(e.Error, "puppet-agent "+tc.agent+" would be newer than puppetserver 7.9.5-1") {
						t.Errorf("%s: the refusal does not say why: %q", e.Host, e.Error)
					}
				}
			}
			for _, h := range []string{"ca.lab.test", "compile1.lab.test"} {
				if got[h] != tc.want {
					t.Errorf("agent %s: preflight/agent-not-newer on %s %q, want %q; results:\n%s", tc.agent, h, got[h], tc.want, strings.Join(seen, "\n"))
				}
			}
		})
	}
}
