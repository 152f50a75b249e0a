// Command troupe-bench is `just bench`: the fan-out benchmark. It starts N
// real sshd on loopback (Debian's /usr/sbin/sshd, one per target, each with
// its own scratch directory) and runs the same four steps on all of them
// with troupe, with a bare Go program on golang.org/x/crypto/ssh (the floor:
// floor.go), with plain OpenSSH (one ControlMaster per host, fanned out by
// xargs -P N) and with Ansible (forks = N, pipelining), measuring the wall
// time and the peak summed RSS of each tool's whole process tree. It prints
// a table and writes it into docs/benchmarks.md.
//
//	go run ./cmd/troupe-bench -troupe bin/troupe -n 50,200 -out docs/benchmarks.md
//
// It needs root (it starts sshd and creates the troupe-test user) and the
// packages of scripts/install-test-deps.sh.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/troupe/troupe/internal/sshtest"
)

type options struct {
	troupe   string
	ns       []int
	out      string
	content  string
	repeat   int
	tools    map[string]bool
	interval time.Duration
	keep     bool
	sshdConf string
	conc     int
}

func main() {
	var o options
	var ns, tools, floor string
	flag.StringVar(&o.troupe, "troupe", "bin/troupe", "the troupe binary to measure")
	flag.StringVar(&ns, "n", "50,200", "comma-separated target counts")
	flag.StringVar(&o.out, "out", "", "write the results into this markdown file (e.g. docs/benchmarks.md); empty: stdout only")
	flag.StringVar(&o.content, "content", "fixtures/bench", "troupe --content directory holding plans/fanout.yaml")
	flag.IntVar(&o.repeat, "repeat", 3, "runs of troupe, the floor and OpenSSH per N (the median is reported); Ansible runs once")
	flag.StringVar(&tools, "tools", "troupe,floor,openssh,ansible", "comma-separated tools to run")
	flag.DurationVar(&o.interval, "interval", 20*time.Millisecond, "memory sampling interval")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch directory (and leave its path on stderr)")
	flag.IntVar(&o.conc, "concurrency", 0, "troupe's --concurrency (0: N, every host at once, as the floor)")
	flag.StringVar(&o.sshdConf, "sshd-config", "", "extra sshd_config lines for every server (diagnostics, e.g. \"LogLevel DEBUG1\")")
	flag.StringVar(&floor, "floor", "", "internal: be the floor program for the hosts listed in this file (see floor.go)")
	flag.Parse()
	if floor != "" {
		if err := runFloor(floor); err != nil {
			fatalf("floor: %v", err)
		}
		return
	}
	for _, s := range strings.Split(ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1000 {
			fatalf("-n: %q is not a target count between 1 and 1000", s)
		}
		o.ns = append(o.ns, n)
	}
	o.tools = map[string]bool{}
	for _, t := range strings.Split(tools, ",") {
		switch t = strings.TrimSpace(t); t {
		case "troupe", "floor", "openssh", "ansible":
			o.tools[t] = true
		default:
			fatalf("-tools: unknown tool %q (troupe, floor, openssh, ansible)", t)
		}
	}
	if o.repeat < 1 {
		o.repeat = 1
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	cancel()
	if err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "troupe-bench: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// result is the measured runs of one tool at one N.
type result struct {
	Tool   string
	N      int
	Runs   []measurement
	Median measurement // the run of median wall time (of an even count, the faster middle one)
	Error  string      // the failure, when the tool did not do the work
}

func run(ctx context.Context, o options) error {
	if err := sshtest.OpenSSHUnavailable(); err != nil {
		return err
	}
	for _, p := range []string{"xargs", "ssh", "scp"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s not found: run `just deps`", p)
		}
	}
	if o.tools["ansible"] {
		if err := ensureAnsible(ctx); err != nil {
			return err
		}
	}
	troupeBin, err := filepath.Abs(o.troupe)
	if err != nil {
		return err
	}
	if _, err := os.Stat(troupeBin); err != nil {
		return fmt.Errorf("troupe binary: %w (run `just build`)", err)
	}
	content, err := filepath.Abs(o.content)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(content, "plans", "fanout.yaml")); err != nil {
		return fmt.Errorf("bench plan: %w", err)
	}
	maxN := slices.Max(o.ns)
	nofile, err := raiseNoFile(maxN)
	if err != nil {
		return err
	}
	if err := becomeSubreaper(); err != nil {
		return err
	}

	base, err := os.MkdirTemp("", "tb-")
	if err != nil {
		return err
	}
	// sshd reads AuthorizedKeysFile as the login user: let it traverse.
	if err := os.Chmod(base, 0o711); err != nil {
		return err
	}
	defer func() {
		if o.keep {
			logf("kept %s", base)
			return
		}
		_ = os.RemoveAll(base)
	}()

	payload := make([]byte, 10*1024)
	rng := rand.New(rand.NewPCG(4711, 42)) // fixed seed: the same payload every run
	for i := range payload {
		payload[i] = byte(rng.UintN(256))
	}
	payloadPath := filepath.Join(base, "payload.bin")
	if err := os.WriteFile(payloadPath, payload, 0o644); err != nil {
		return err
	}

	logf("starting %d sshd on 127.0.0.1 (RLIMIT_NOFILE %d; each sshd has MaxStartups 100:30:200 and sees one client)", maxN, nofile)
	t0 := time.Now()
	f, err := startFleet(ctx, base, maxN, o.sshdConf)
	if err != nil {
		return err
	}
	defer f.stop()
	logf("%d sshd up in %.1fs", maxN, time.Since(t0).Seconds())

	env := &benchEnv{f: f, payload: payloadPath, troupe: troupeBin, content: content, conc: o.conc}
	m := collectMachine(troupeBin)
	if err := warmUp(ctx, env); err != nil {
		return err
	}

	var results []*result
	for _, n := range o.ns {
		hosts := f.Hosts[:n]
		byTool := map[string]*result{}
		var order []tool
		for _, t := range env.tools() {
			if !o.tools[t.Name] {
				continue
			}
			order = append(order, t)
			r := &result{Tool: t.Name, N: n}
			byTool[t.Name] = r
			results = append(results, r)
		}
		// troupe, the floor and OpenSSH take turns, repeat times; Ansible once, last.
		for rep := range o.repeat {
			for _, t := range order {
				r := byTool[t.Name]
				if t.Name == "ansible" && rep > 0 || r.Error != "" {
					continue
				}
				if err := runOnce(ctx, o, env, t, hosts, r, payload, base, rep); err != nil {
					return err
				}
			}
		}
	}

	table := renderTable(results, o.ns)
	fmt.Println()
	fmt.Print(table)
	if o.out != "" {
		if err := writeDoc(o.out, m, o, results); err != nil {
			return err
		}
		logf("wrote %s", o.out)
	}
	for _, r := range results {
		if r.Error != "" {
			return fmt.Errorf("%s failed at N=%d (figures above exclude it):\n%s", r.Tool, r.N, r.Error)
		}
	}
	return nil
}

// runOnce measures one run of one tool and records it in r. Only a broken
// benchmark (not a failing tool) is returned as an error.
func runOnce(ctx context.Context, o options, env *benchEnv, t tool, hosts []*host, r *result, payload []byte, base string, rep int) error {
	if err := env.f.clean(); err != nil {
		return err
	}
	dir := filepath.Join(base, fmt.Sprintf("%s-%d-%d", t.Name, len(hosts), rep+1))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	cmd, err := t.prepare(dir, hosts)
	if err != nil {
		return err
	}
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		return err
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		return err
	}
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	timeout := 5 * time.Minute
	if t.Name == "ansible" {
		timeout = 20 * time.Minute
	}
	// Let the previous run's server-side processes finish first, and see
	// how busy the machine is meanwhile (other work skews the figures).
	busy0, t0 := machineBusy(), time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Second):
	}
	background := (machineBusy() - busy0).Seconds() / time.Since(t0).Seconds() / float64(runtime.NumCPU())
	logf("%-8s N=%-4d run %d … (machine %.0f%% busy before it)", t.Name, len(hosts), rep+1, 100*background)
	ms := measure(ctx, cmd, o.interval, timeout)
	ms.Background = background
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if ms.Err == nil {
		ms.Err = verify(hosts, payload)
	}
	if ms.Err != nil {
		out, _ := os.ReadFile(stdout.Name())
		errOut, _ := os.ReadFile(stderr.Name())
		r.Error = fmt.Sprintf("%v\n--- stderr (tail) ---\n%s\n--- stdout (tail) ---\n%s", ms.Err, tail(errOut, 40), tail(out, 40))
		logf("%-8s N=%-4d run %d FAILED after %.2fs: %v", t.Name, len(hosts), rep+1, ms.Wall.Seconds(), ms.Err)
		return nil
	}
	r.Runs = append(r.Runs, ms)
	byWall := slices.SortedFunc(slices.Values(r.Runs), func(a, b measurement) int { return cmp.Compare(a.Wall, b.Wall) })
	r.Median = byWall[(len(byWall)-1)/2]
	logf("%-8s N=%-4d run %d: %6.2fs  peak %7.1f MiB, %d processes; CPU: client %.1fs, machine %.1fs; %d samples, sampler CPU %.2fs",
		t.Name, len(hosts), rep+1, ms.Wall.Seconds(), mib(ms.PeakRSS), ms.PeakProcs,
		ms.ClientCPU.Seconds(), ms.MachineCPU.Seconds(), ms.Samples, ms.SamplerCPU.Seconds())
	return nil
}

// ensureAnsible installs Debian's ansible package when ansible-playbook is
// missing (`just bench` has `just deps` do it first).
func ensureAnsible(ctx context.Context) error {
	if _, err := exec.LookPath("ansible-playbook"); err == nil {
		return nil
	}
	logf("ansible-playbook not found: apt-get install ansible")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"update", "-q"}, {"install", "-y", "-q", "--no-install-recommends", "ansible"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %v\n%s\n(or leave ansible out of -tools)", strings.Join(args, " "), err, tail(out, 20))
		}
	}
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		return errors.New("ansible-playbook still not found after installing Debian's ansible package")
	}
	return nil
}

// warmUp runs each client once against one target, so the first measured
// run does not pay for a cold page cache, and checks they all work.
func warmUp(ctx context.Context, env *benchEnv) error {
	h := env.f.Hosts[:1]
	cmd := exec.CommandContext(ctx, "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+env.f.KnownHosts, "-i", env.f.Key, "-p", strconv.Itoa(h[0].Port),
		sshtest.TestUser+"@127.0.0.1", "true")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ssh to the first target: %v: %s", err, out)
	}
	for _, name := range []string{"troupe", "ansible-playbook"} {
		c := exec.CommandContext(ctx, name, "--version")
		if name == "troupe" {
			c = exec.CommandContext(ctx, env.troupe, "version")
		}
		_ = c.Run()
	}
	return nil
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
