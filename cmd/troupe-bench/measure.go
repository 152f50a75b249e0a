package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// The measurement: wall time from start to exit of the tool's process, and
// the peak of the summed RSS of the tool's whole process tree, sampled from
// /proc every interval.
//
// "The tool's tree" is every descendant of this program except the sshd
// servers (and their per-connection children, the remote side). This program
// makes itself a child subreaper, so processes that daemonize (OpenSSH's
// ControlPersist masters, Ansible's) are reparented here instead of to init
// and stay counted; such orphans are counted when they run as root (the
// client side: the tools run as root and log in as troupe-test), and they are
// reaped by the sampler and killed after each run.

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

func becomeSubreaper() error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", e)
	}
	return nil
}

// procStat is what the sampler reads from /proc/PID/stat.
type procStat struct {
	ppid  int
	state byte
	rss   int64 // pages
}

// parseStat parses /proc/PID/stat; comm may hold spaces and parentheses, so
// the fields are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, errors.New("short stat")
	}
	f := bytes.Fields(b[i+2:])
	// f[0] is field 3 (state), so field n is f[n-3]: ppid 4, rss 24.
	if len(f) < 22 {
		return procStat{}, errors.New("short stat")
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return procStat{}, err
	}
	rss, err := strconv.ParseInt(string(f[21]), 10, 64)
	if err != nil {
		return procStat{}, err
	}
	return procStat{ppid: ppid, state: f[0][0], rss: rss}, nil
}

type class uint8

const (
	classUnknown class = iota
	classCounted       // the tool's process or one of its descendants/orphans
	classExcluded      // anything else (the servers, the rest of the machine)
)

// sampler follows one tool's process tree.
type sampler struct {
	self    int
	tool    int
	servers map[int]bool // direct children of self when the run started: the sshd servers
	cache   map[int]class
	buf     []byte
	page    int64

	peakRSS   int64 // bytes, whole tree
	peakTool  int64 // bytes, the tool's own process
	peakProcs int
	samples   int
}

func newSampler(tool int, servers map[int]bool) *sampler {
	return &sampler{
		self: os.Getpid(), tool: tool, servers: servers,
		cache: map[int]class{}, buf: make([]byte, 1024), page: int64(os.Getpagesize()),
	}
}

func (s *sampler) readStat(pid int) (procStat, bool) {
	fd, err := syscall.Open("/proc/"+strconv.Itoa(pid)+"/stat", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return procStat{}, false
	}
	n, err := syscall.Read(fd, s.buf)
	syscall.Close(fd)
	if err != nil || n <= 0 {
		return procStat{}, false
	}
	st, err := parseStat(s.buf[:n])
	return st, err == nil
}

// listPids returns the numeric entries of /proc.
func listPids() ([]int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' {
			continue
		}
		if p, err := strconv.Atoi(n); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// directChildServers lists the current direct children of this process.
func directChildren() map[int]bool {
	out := map[int]bool{}
	s := newSampler(0, nil)
	pids, _ := listPids()
	for _, p := range pids {
		if st, ok := s.readStat(p); ok && st.ppid == s.self {
			out[p] = true
		}
	}
	return out
}

func uidOf(pid int) (uint32, bool) {
	fi, err := os.Stat("/proc/" + strconv.Itoa(pid))
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}

// sample takes one sample. A pid's class never changes while it lives (a
// process only moves to a new parent when its own dies, and then to us), and
// pids are allocated in sequence, so a pid missing from one listing is
// forgotten and a cached exclusion is never applied to a new process.
func (s *sampler) sample() {
	pids, err := listPids()
	if err != nil {
		return
	}
	present := make(map[int]bool, len(pids))
	stats := make(map[int]procStat, 64)
	for _, p := range pids {
		present[p] = true
		if s.cache[p] == classExcluded {
			continue
		}
		if st, ok := s.readStat(p); ok {
			stats[p] = st
		}
	}
	for p := range s.cache {
		if !present[p] {
			delete(s.cache, p)
		}
	}
	var total, tool int64
	procs := 0
	for p, st := range stats {
		c := s.classify(p, stats, 0)
		if c != classCounted {
			continue
		}
		total += st.rss * s.page
		procs++
		if p == s.tool {
			tool = st.rss * s.page
		}
		if st.ppid == s.self && p != s.tool && st.state == 'Z' {
			// An orphan that was reparented to us has exited: reap it.
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(p, &ws, syscall.WNOHANG, nil)
		}
	}
	s.samples++
	s.peakRSS = max(s.peakRSS, total)
	s.peakTool = max(s.peakTool, tool)
	s.peakProcs = max(s.peakProcs, procs)
}

func (s *sampler) classify(p int, stats map[int]procStat, depth int) class {
	if c := s.cache[p]; c != classUnknown {
		return c
	}
	if p == s.tool {
		s.cache[p] = classCounted
		return classCounted
	}
	if p == s.self || p <= 1 || s.servers[p] || depth > 64 {
		s.cache[p] = classExcluded
		return classExcluded
	}
	st, ok := stats[p]
	if !ok {
		return classUnknown // vanished meanwhile: decide next time
	}
	var c class
	switch {
	case st.ppid == s.self:
		// Not the tool, not a server: an orphan reparented to us.
		if uid, ok := uidOf(p); ok && uid == 0 {
			c = classCounted
		} else if ok {
			c = classExcluded
		}
	case st.ppid <= 1:
		c = classExcluded
	default:
		c = s.classify(st.ppid, stats, depth+1)
	}
	if c != classUnknown {
		s.cache[p] = c
	}
	return c
}

// measurement is one run of one tool.
type measurement struct {
	Wall      time.Duration
	PeakRSS   int64 // bytes, summed RSS of the whole tree
	PeakTool  int64 // bytes, RSS of the tool's main process alone
	PeakProcs int
	Samples   int
	Err       error
}

// measure runs cmd (in its own process group), sampling its tree every
// interval, kills the group at timeout, and afterwards kills and reaps any
// orphans it left (ControlPersist masters).
func measure(ctx context.Context, cmd *exec.Cmd, interval, timeout time.Duration) measurement {
	servers := directChildren()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return measurement{Err: err}
	}
	s := newSampler(cmd.Process.Pid, servers)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	s.sample()
	var err error
	var wall time.Duration
loop:
	for {
		select {
		case err = <-done:
			wall = time.Since(start)
			break loop
		case <-tick.C:
			s.sample()
		case <-deadline.C:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = fmt.Errorf("timed out after %s", timeout)
			<-done
			wall = time.Since(start)
			break loop
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			err = ctx.Err()
			wall = time.Since(start)
			break loop
		}
	}
	killOrphans(servers)
	return measurement{Wall: wall, PeakRSS: s.peakRSS, PeakTool: s.peakTool, PeakProcs: s.peakProcs, Samples: s.samples, Err: err}
}

// killOrphans terminates and reaps our direct children that are not in keep
// (the servers), waiting up to 5 s before SIGKILL.
func killOrphans(keep map[int]bool) {
	deadline := time.Now().Add(5 * time.Second)
	sig := syscall.SIGTERM
	for {
		left := 0
		for p := range directChildren() {
			if keep[p] {
				continue
			}
			left++
			_ = syscall.Kill(p, sig)
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(p, &ws, syscall.WNOHANG, nil)
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			if sig == syscall.SIGKILL {
				return
			}
			sig = syscall.SIGKILL
			deadline = time.Now().Add(5 * time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
