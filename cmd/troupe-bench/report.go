package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes where the figures were measured.
type machine struct {
	CPU, Kernel, OS          string
	CPUs                     int
	RAM                      string
	Troupe, OpenSSH, Ansible string
	Go                       string
	Date                     string
}

func collectMachine(troupeBin string) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Date: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.RAM = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	m.Troupe = firstLine(exec.Command(troupeBin, "version"))
	m.OpenSSH = firstLine(exec.Command("ssh", "-V"))
	m.Ansible = firstLine(exec.Command("ansible-playbook", "--version"))
	return m
}

func firstLine(c *exec.Cmd) string {
	out, err := c.CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown (" + err.Error() + ")"
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}

var toolLabels = map[string]string{
	"troupe":  "troupe",
	"floor":   "floor: bare x/crypto/ssh program",
	"openssh": "OpenSSH ControlMaster + `xargs -P N`",
	"ansible": "Ansible (forks = N, pipelining)",
}

func find(results []*result, tool string, n int) *result {
	for _, r := range results {
		if r.Tool == tool && r.N == n && r.Error == "" && len(r.Runs) > 0 {
			return r
		}
	}
	return nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// renderTable is the results as a markdown table (also what stdout shows).
func renderTable(results []*result, ns []int) string {
	var b strings.Builder
	b.WriteString("| N | tool | wall s (median) | all runs, s | peak RSS of the tree, MiB | processes at peak | client CPU s | machine CPU s | wall vs troupe | wall vs floor | memory vs troupe |\n")
	b.WriteString("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range ns {
		tr, fl := find(results, "troupe", n), find(results, "floor", n)
		ratio := func(r, to *result, of func(measurement) float64) string {
			if to == nil {
				return "–"
			}
			return fmt.Sprintf("%.2f×", of(r.Median)/of(to.Median))
		}
		wall := func(m measurement) float64 { return m.Wall.Seconds() }
		rss := func(m measurement) float64 { return float64(m.PeakRSS) }
		for _, r := range results {
			if r.N != n {
				continue
			}
			if r.Error != "" || len(r.Runs) == 0 {
				fmt.Fprintf(&b, "| %d | %s | failed | | | | | | | | |\n", n, toolLabels[r.Tool])
				continue
			}
			var all []string
			for _, m := range r.Runs {
				all = append(all, secs(m.Wall))
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %.1f | %d | %.1f | %.1f | %s | %s | %s |\n", n, toolLabels[r.Tool], secs(r.Median.Wall),
				strings.Join(all, ", "), mib(r.Median.PeakRSS), r.Median.PeakProcs,
				r.Median.ClientCPU.Seconds(), r.Median.MachineCPU.Seconds(),
				ratio(r, tr, wall), ratio(r, fl, wall), ratio(r, tr, rss))
		}
	}
	return b.String()
}

// targets are the goals at N = 200.
func renderTargets(results []*result) string {
	const n = 200
	tr := find(results, "troupe", n)
	if tr == nil {
		return "The targets are set at N = 200, which was not measured (or troupe failed there).\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Targets at N = %d:\n\n", n)
	met := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**not met**"
	}
	if r := find(results, "floor", n); r != nil {
		x := tr.Median.Wall.Seconds() / r.Median.Wall.Seconds()
		fmt.Fprintf(&b, "- within 1.3× of the bare x/crypto/ssh program (the floor): %.2f× — %s\n", x, met(x <= 1.3))
	} else {
		b.WriteString("- within 1.3× of the bare x/crypto/ssh program (the floor): not measured\n")
	}
	if r := find(results, "openssh", n); r != nil {
		x := r.Median.Wall.Seconds() / tr.Median.Wall.Seconds()
		fmt.Fprintf(&b, "- at least 2× faster than the plain-OpenSSH fan-out: %.1f× — %s\n", x, met(x >= 2))
	} else {
		b.WriteString("- at least 2× faster than the plain-OpenSSH fan-out: not measured\n")
	}
	if r := find(results, "ansible", n); r != nil {
		x := r.Median.Wall.Seconds() / tr.Median.Wall.Seconds()
		fmt.Fprintf(&b, "- at least 20× faster than Ansible: %.1f× — %s\n", x, met(x >= 20))
	} else {
		b.WriteString("- at least 20× faster than Ansible: not measured\n")
	}
	fmt.Fprintf(&b, "- peak memory under 100 MB: %.1f MB (%.1f MiB) — %s\n",
		float64(tr.Median.PeakRSS)/1e6, mib(tr.Median.PeakRSS), met(tr.Median.PeakRSS < 100e6))
	return b.String()
}

const docMarker = "<!-- Everything below is written by cmd/troupe-bench (`just bench`); edit above this line only. -->"

const defaultHeader = `# Benchmarks

## Fan-out: troupe vs a bare Go program, plain OpenSSH and Ansible

Reproduce with ` + "`just bench`" + ` (as root, on Debian 12): it installs the test
dependencies (Debian's openssh-server and ansible among them), builds
` + "`bin/troupe`" + ` and runs
` + "`go run ./cmd/troupe-bench -troupe bin/troupe -n 50,200 -out docs/benchmarks.md`" + `,
which rewrites everything below the marker line (this header is kept). It
takes a few minutes, most of them Ansible's. ` + "`go run ./cmd/troupe-bench -h`" + `
lists the knobs (` + "`-tools`" + `, ` + "`-repeat`" + `, ` + "`-keep`" + ` to inspect the generated
inventories, scripts and outputs).

What it does: it starts N real sshd (Debian's ` + "`/usr/sbin/sshd`" + `, via
` + "`internal/sshtest`" + `) on 127.0.0.1, one per target, each with its own scratch
directory, and runs the same four steps on all N with each tool: ` + "`echo hello`" + `,
touch a file, upload a 10 KiB file (fixed-seed random bytes), ` + "`sha256sum`" + ` it
into a file. All of them log in as the unprivileged ` + "`troupe-test`" + ` user without
sudo, with strict host key checking against the servers' real keys. Every
run is checked afterwards (every target must hold the file and its right
checksum), and the scratch directories are emptied before each run so that
every run does the full work.

- **troupe**: ` + "`troupe run fanout -i INV --content fixtures/bench --concurrency N --format json`" + `
  (the plan is ` + "`fixtures/bench/plans/fanout.yaml`" + `; the host var ` + "`troupe_lock`" + `
  puts each host's run lock in its scratch directory, as the targets share
  one ` + "`/tmp`" + `).
- **floor**: a bare Go program (` + "`cmd/troupe-bench/floor.go`" + `: the bench binary
  itself, started with ` + "`-floor`" + `): one golang.org/x/crypto/ssh connection per
  host, all hosts at once, three exec sessions and one SFTP write, and nothing
  else (no lock, no probes, no temp file and rename, no report): the least SSH
  work the four steps need. *Wall vs floor* is what troupe's extras cost.
- **OpenSSH**: a per-host shell script run by ` + "`xargs -P N`" + `: open a
  ControlMaster, three ` + "`ssh`" + ` commands and one ` + "`scp`" + ` over it, close it.
- **Ansible**: a four-task playbook, ` + "`forks = N`" + `, ` + "`pipelining = True`" + `,
  ` + "`gathering = explicit`" + ` (no facts), Ansible's default ControlMaster ` + "`ssh_args`" + `.

Columns: *wall* is from starting the tool to its exit. *Peak RSS of the
tree* is the peak of the summed RSS of the tool's whole process tree,
sampled from ` + "`/proc`" + ` every 20 ms: for OpenSSH every ` + "`xargs`" + `, ` + "`sh`" + `, ` + "`ssh`" + `
and ` + "`scp`" + ` process (the ControlPersist masters included: the benchmark is a
child subreaper), for Ansible every fork and its ` + "`ssh`" + ` processes; the sshd
servers are not counted. Summed RSS counts a shared page once in every
process that maps it, so it overstates the many-process tools' footprint
somewhat. *Client CPU* is the CPU time of that tree; *machine CPU* is all
busy CPU time on the machine during the run, the sshd side included: the
servers share the client's CPUs here, so at N = 200 every tool saturates
the machine and a tool's wall time depends on how much sshd work (sessions
per host) it causes as well as on its own. troupe, the floor and OpenSSH run
three times each, taking turns, and the run of median wall time is
shown; Ansible runs once.

`

// writeDoc keeps the hand-written part of path above docMarker (or writes a
// default one) and replaces the rest with this run's figures.
func writeDoc(path string, m machine, o options, results []*result) error {
	header := defaultHeader
	if b, err := os.ReadFile(path); err == nil {
		if i := bytes.Index(b, []byte(docMarker)); i >= 0 {
			header = string(b[:i])
		}
	}
	var b strings.Builder
	b.WriteString(header)
	b.WriteString(docMarker + "\n\n")
	fmt.Fprintf(&b, "### Results (%s)\n\n", m.Date)
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %s RAM, Linux %s, %s.  \n", m.CPUs, m.CPU, m.RAM, m.Kernel, m.OS)
	versions := []string{m.Troupe, m.OpenSSH}
	if o.tools["ansible"] {
		versions = append(versions, m.Ansible)
	}
	fmt.Fprintf(&b, "Versions: %s; bench built with %s.  \n", strings.Join(versions, "; "), m.Go)
	fmt.Fprintf(&b, "Tools run: %s. Runs per N: troupe, the floor and OpenSSH %d each, taking turns (the median run shown), Ansible 1; memory sampled every %s.", ranTools(o), o.repeat, o.interval)
	if o.conc > 0 {
		fmt.Fprintf(&b, " troupe ran with `--concurrency %d` (the others take every host at once).", o.conc)
	}
	b.WriteString("\n\n")
	b.WriteString(renderTable(results, o.ns))
	b.WriteString("\n")
	for _, n := range o.ns {
		if r := find(results, "troupe", n); r != nil {
			fmt.Fprintf(&b, "troupe's own process at N = %d peaked at %.1f MiB RSS.  \n", n, mib(r.Median.PeakTool))
		}
	}
	var worst float64
	for _, r := range results {
		for _, m := range r.Runs {
			if m.Wall > 0 {
				worst = max(worst, m.SamplerCPU.Seconds()/m.Wall.Seconds())
			}
		}
	}
	bgMin, bgMax := 1.0, 0.0
	for _, r := range results {
		for _, m := range r.Runs {
			bgMin, bgMax = min(bgMin, m.Background), max(bgMax, m.Background)
		}
	}
	fmt.Fprintf(&b, "The memory sampler itself used at most %.1f%% of one CPU during any run. ", 100*worst)
	if bgMax >= bgMin {
		fmt.Fprintf(&b, "In the 2 s before each run, %.0f–%.0f%% of the machine's CPU time was busy with other work (other jobs on this machine, the last server processes of the previous run).", 100*bgMin, 100*bgMax)
	}
	b.WriteString("\n\n")
	if bgMax > 0.25 {
		fmt.Fprintf(&b, "**Caveat: the machine was not idle** (up to %.0f%% busy with other work before a run), so every tool's "+
			"wall time here is inflated, the many-process tools' (OpenSSH, Ansible) the most, and runs vary; "+
			"re-run `just bench` on an idle machine for absolute figures.\n\n", 100*bgMax)
	}
	b.WriteString(renderTargets(results))
	var failed []string
	for _, r := range results {
		if r.Error != "" {
			failed = append(failed, fmt.Sprintf("- %s at N = %d: `%s`", toolLabels[r.Tool], r.N, firstLineOf(r.Error)))
		}
	}
	if len(failed) > 0 {
		b.WriteString("\nFailed runs (no figures):\n\n" + strings.Join(failed, "\n") + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// ranTools lists the tools this run measured, in the table's order.
func ranTools(o options) string {
	var out []string
	for _, t := range []string{"troupe", "floor", "openssh", "ansible"} {
		if o.tools[t] {
			out = append(out, t)
		}
	}
	return strings.Join(out, ", ")
}
