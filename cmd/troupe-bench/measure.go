package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
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
	classUnknown  class = iota
	classCounted        // the tool's process or one of its descendants/orphans
	classExcluded       // anything else (the servers, the rest of the machine)
)

type entry struct {
	class class
	gen   uint32 // the last sample that listed the pid
	statm int    // open /proc/PID/statm of a counted process (re-read with pread), or -1
}

// sampler follows one tool's process tree. It reads /proc/PID/stat once per
// new process (to place it in the tree) and then only /proc/PID/statm of the
// tool's processes, so that its own cost stays small next to the tools'.
type sampler struct {
	self    int
	tool    int
	servers map[int]bool // direct children of self when the run started: the sshd servers
	cache   map[int]*entry
	gen     uint32
	procFD  int
	dents   []byte
	buf     []byte
	pids    []int
	stats   map[int]procStat
	page    int64

	peakRSS   int64 // bytes, whole tree
	peakTool  int64 // bytes, the tool's own process
	peakProcs int
	samples   int
}

func newSampler(tool int, servers map[int]bool) (*sampler, error) {
	fd, err := syscall.Open("/proc", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &sampler{
		self: os.Getpid(), tool: tool, servers: servers, procFD: fd,
		cache: map[int]*entry{}, dents: make([]byte, 64<<10), buf: make([]byte, 1024),
		stats: map[int]procStat{}, page: int64(os.Getpagesize()),
	}, nil
}

func (s *sampler) close() {
	syscall.Close(s.procFD)
	for p, e := range s.cache {
		s.forget(p, e)
	}
}

func (s *sampler) forget(p int, e *entry) {
	if e.statm >= 0 {
		syscall.Close(e.statm)
	}
	delete(s.cache, p)
}

// read reads /proc/PID/NAME into s.buf.
func (s *sampler) read(pid int, name string) ([]byte, bool) {
	fd, err := syscall.Open("/proc/"+strconv.Itoa(pid)+"/"+name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	n, err := syscall.Read(fd, s.buf)
	syscall.Close(fd)
	if err != nil || n <= 0 {
		return nil, false
	}
	return s.buf[:n], true
}

func (s *sampler) readStat(pid int) (procStat, bool) {
	b, ok := s.read(pid, "stat")
	if !ok {
		return procStat{}, false
	}
	st, err := parseStat(b)
	return st, err == nil
}

// readRSS returns the resident pages from a held /proc/PID/statm (its 2nd
// field): one pread, a fraction of the cost of open+read+close.
func (s *sampler) readRSS(e *entry) (int64, bool) {
	if e.statm < 0 {
		return 0, false
	}
	n, err := syscall.Pread(e.statm, s.buf, 0)
	if err != nil || n <= 0 {
		syscall.Close(e.statm)
		e.statm = -1
		return 0, false
	}
	f := bytes.Fields(s.buf[:n])
	if len(f) < 2 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(f[1]), 10, 64)
	return v, err == nil
}

// listPids lists the numeric entries of /proc into s.pids with getdents on
// the directory opened once.
func (s *sampler) listPids() error {
	if _, err := syscall.Seek(s.procFD, 0, 0); err != nil {
		return err
	}
	s.pids = s.pids[:0]
	for {
		n, err := syscall.Getdents(s.procFD, s.dents)
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		b := s.dents[:n]
		for len(b) >= 19 {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				break
			}
			pid := 0
			for _, c := range b[19:reclen] {
				if c == 0 {
					break
				}
				if c < '0' || c > '9' {
					pid = -1
					break
				}
				pid = pid*10 + int(c-'0')
			}
			if pid > 0 {
				s.pids = append(s.pids, pid)
			}
			b = b[reclen:]
		}
	}
}

// directChildren lists the current direct children of this process.
func directChildren() map[int]bool {
	out := map[int]bool{}
	s, err := newSampler(0, nil)
	if err != nil {
		return out
	}
	defer s.close()
	if s.listPids() != nil {
		return out
	}
	for _, p := range s.pids {
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
// forgotten and a cached class is never applied to a new process.
func (s *sampler) sample() {
	if err := s.listPids(); err != nil {
		return
	}
	s.gen++
	clear(s.stats)
	var fresh []int
	for _, p := range s.pids {
		if e := s.cache[p]; e != nil {
			e.gen = s.gen
			continue
		}
		fresh = append(fresh, p)
		if st, ok := s.readStat(p); ok {
			s.stats[p] = st
		}
	}
	for p, e := range s.cache {
		if e.gen != s.gen {
			s.forget(p, e)
		}
	}
	for _, p := range fresh {
		s.classify(p, 0)
	}
	var total, tool int64
	procs := 0
	for p, e := range s.cache {
		if e.class != classCounted {
			continue
		}
		rss, ok := s.readRSS(e)
		if !ok || rss == 0 { // gone, or a zombie
			continue
		}
		total += rss * s.page
		procs++
		if p == s.tool {
			tool = rss * s.page
		}
	}
	s.samples++
	s.peakRSS = max(s.peakRSS, total)
	s.peakTool = max(s.peakTool, tool)
	s.peakProcs = max(s.peakProcs, procs)
}

func (s *sampler) classify(p int, depth int) class {
	if e := s.cache[p]; e != nil {
		return e.class
	}
	var c class
	st, ok := s.stats[p]
	switch {
	case p == s.tool:
		c = classCounted
	case p == s.self || p <= 1 || s.servers[p] || depth > 64:
		c = classExcluded
	case !ok:
		return classUnknown // vanished meanwhile, or older than this listing: decide next time
	case st.ppid == s.self:
		// Not the tool, not a server: an orphan reparented to us, counted
		// when it is the client side (root; the servers' sessions are not).
		if uid, ok := uidOf(p); ok && uid == 0 {
			c = classCounted
		} else if ok {
			c = classExcluded
		}
	case st.ppid <= 1:
		c = classExcluded
	default:
		c = s.classify(st.ppid, depth+1)
	}
	if c != classUnknown {
		e := &entry{class: c, gen: s.gen, statm: -1}
		if c == classCounted {
			if fd, err := syscall.Open("/proc/"+strconv.Itoa(p)+"/statm", syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err == nil {
				e.statm = fd
			}
		}
		s.cache[p] = e
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
	// ClientCPU is the CPU time of the tool's processes: the tool with the
	// descendants it reaped, plus the orphans reaped here.
	ClientCPU time.Duration
	// MachineCPU is the CPU time the whole machine spent busy during the run
	// (the sshd side included, and anything else running).
	MachineCPU time.Duration
	// Background is the share of the machine's CPUs busy in the 2 s before
	// the run (0..1): work that is not the benchmark's.
	Background float64
	// SamplerCPU is the CPU time the sampler itself used during the run.
	SamplerCPU time.Duration
	Err        error
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
	type exit struct {
		err error
		at  time.Time
	}
	busy0 := machineBusy()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return measurement{Err: err}
	}
	done := make(chan exit, 1)
	go func() { err := cmd.Wait(); done <- exit{err, time.Now()} }()
	s, err := newSampler(cmd.Process.Pid, servers)
	if err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return measurement{Err: err}
	}
	defer s.close()

	// Sample on time even when the tool saturates the CPUs: this thread
	// (which never forks: the tool is started above) runs at nice -10 and
	// sleeps in nanosleep, not on a Go timer that a starved thread would
	// have to fire. Its own CPU time is reported as the sampler's overhead.
	runtime.LockOSThread()
	tid := syscall.Gettid()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, -10)
	cpu0 := threadCPU()
	defer func() {
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, 0)
		runtime.UnlockOSThread()
	}()

	var (
		res  exit
		next = time.Now()
	)
	deadline := start.Add(timeout)
loop:
	for {
		s.sample()
		select {
		case res = <-done:
			break loop
		default:
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			res = <-done
			res.err = ctx.Err()
			if res.err == nil {
				res.err = fmt.Errorf("timed out after %s", timeout)
			}
			break loop
		}
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			ts := syscall.NsecToTimespec(d.Nanoseconds())
			_ = syscall.Nanosleep(&ts, nil)
		} else {
			next = time.Now() // fell behind: do not burst
		}
	}
	samplerCPU := threadCPU() - cpu0
	busy := machineBusy() - busy0
	orphansCPU := killOrphans(servers)
	var clientCPU time.Duration
	if ps := cmd.ProcessState; ps != nil {
		clientCPU = ps.UserTime() + ps.SystemTime()
	}
	return measurement{Wall: res.at.Sub(start), PeakRSS: s.peakRSS, PeakTool: s.peakTool, PeakProcs: s.peakProcs,
		Samples: s.samples, ClientCPU: clientCPU + orphansCPU, MachineCPU: busy, SamplerCPU: samplerCPU, Err: res.err}
}

// machineBusy is the machine's busy CPU time so far, from /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0
	}
	var ticks int64
	// user nice system idle iowait irq softirq steal: all but idle and iowait.
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, _ := strconv.ParseInt(string(v), 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}

func rusageCPU(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rusageThread is RUSAGE_THREAD from <sys/resource.h>.
const rusageThread = 1

// threadCPU is the calling OS thread's CPU time.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return rusageCPU(&ru)
}

// killOrphans terminates and reaps our direct children that are not in keep
// (the servers), waiting up to 5 s before SIGKILL.
// It returns the CPU time of those it reaped.
func killOrphans(keep map[int]bool) (cpu time.Duration) {
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
			var ru syscall.Rusage
			if pid, err := syscall.Wait4(p, &ws, syscall.WNOHANG, &ru); err == nil && pid == p {
				cpu += rusageCPU(&ru)
			}
		}
		if left == 0 {
			return cpu
		}
		if time.Now().After(deadline) {
			if sig == syscall.SIGKILL {
				return cpu
			}
			sig = syscall.SIGKILL
			deadline = time.Now().Add(5 * time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
