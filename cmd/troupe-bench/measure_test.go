package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/testenv"
)

func TestParseStat(t *testing.T) {
	st, err := parseStat([]byte("4711 (a) b (c)) S 42 4711 4711 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123 4567 89 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 42 || st.state != 'S' || st.rss != 89 {
		t.Fatalf("got %+v", st)
	}
	if _, err := parseStat([]byte("1 (x) S 0")); err == nil {
		t.Fatal("short stat accepted")
	}
}

// The whole tree is counted: a shell with two children of its own, one of
// which outlives it (reparented to us as subreaper), each ~20 MiB resident.
func TestMeasureTree(t *testing.T) {
	if err := becomeSubreaper(); err != nil {
		testenv.Skip(t, err)
	}
	const alloc = `python3 -c 'import time; b = bytearray(20 << 20); b[::4096] = b"x" * len(b[::4096]); time.sleep(0.5)'`
	cmd := exec.Command("sh", "-c", "("+alloc+" &) ; "+alloc+" & wait")
	if _, err := exec.LookPath("python3"); err != nil {
		testenv.Skip(t, "no python3")
	}
	m := measure(context.Background(), cmd, 20*time.Millisecond, time.Minute)
	if m.Err != nil {
		t.Fatal(m.Err)
	}
	if m.PeakProcs < 3 || m.PeakRSS < 40<<20 {
		t.Fatalf("peak %d processes, %.1f MiB; want ≥ 3 and ≥ 40 MiB", m.PeakProcs, mib(m.PeakRSS))
	}
	if m.Wall < 400*time.Millisecond || m.Samples < 5 {
		t.Fatalf("wall %s, %d samples", m.Wall, m.Samples)
	}
	if left := len(directChildren()); left != 0 {
		t.Fatalf("%d children left behind", left)
	}
}

// BenchmarkSample is the sampler's cost per sample with 300 counted processes.
func BenchmarkSample(b *testing.B) {
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	for range 300 {
		c := exec.Command("sleep", "60")
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	s, err := newSampler(os.Getpid(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	s.sample()
	b.ResetTimer()
	for range b.N {
		s.sample()
	}
	if s.peakProcs < 300 {
		b.Fatalf("counted %d processes", s.peakProcs)
	}
}
