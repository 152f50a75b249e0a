package haproxy

import (
	"strings"
	"testing"
)

// statOf is the lab's real `show stat` answer (lb-healthy.txt: compile1 and
// compile2 UP) with the backend's servers set to status; a server the
// fixture lacks is compile2's row renamed, one absent from status is left
// out.
func statOf(t *testing.T, status map[string]string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(section(t, "lbstat")), "\n")
	cols := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	col := func(name string) int {
		for i, c := range cols {
			if c == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	stCol, svCol := col("status"), col("svname")
	var template []string
	out := []string{lines[0]}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if f[0] == "compilers" && f[svCol] == "compile2" {
			template = f
		}
		if f[0] != "compilers" || f[svCol] == "BACKEND" {
			out = append(out, l) // the frontend and backend rows stay: they must not be counted
		}
	}
	for server, st := range status {
		row := append([]string(nil), template...)
		row[svCol], row[stCol] = server, st
		out = append(out, strings.Join(row, ","))
	}
	return strings.Join(out, "\n") + "\n"
}

func TestStatOfKeepsTheFormat(t *testing.T) {
	rows := ParseStat(statOf(t, map[string]string{"compile1": "UP", "compile3": "DOWN"}))
	got := map[string]string{}
	for _, r := range rows {
		got[r.Backend+"/"+r.Server] = r.Status
	}
	if len(got) != 2 || got["compilers/compile1"] != "UP" || got["compilers/compile3"] != "DOWN" {
		t.Fatalf("%v", got)
	}
}

// The fault: compile1 back UP, compile3's puppetserver stopped,
// min_ready 2: draining compile2 would leave 1.
func TestLeaveRefusedBelowMin(t *testing.T) {
	p := NewPool("compilers", []LBStat{{"lb1", statOf(t, map[string]string{"compile1": "UP", "compile2": "UP", "compile3": "DOWN"})}})
	l := p.Leave("compile2", "drain", 2)
	if l.OK() {
		t.Fatalf("allowed: %s", l)
	}
	want := "draining compile2 would leave 1 of 3 compilers UP (compile3 DOWN), below min_ready 2"
	if l.String() != want {
		t.Errorf("got  %s\nwant %s", l, want)
	}
	// the positive control: the same pool with compile3 UP again
	p = NewPool("compilers", []LBStat{{"lb1", statOf(t, map[string]string{"compile1": "UP", "compile2": "UP", "compile3": "UP"})}})
	if l := p.Leave("compile2", "drain", 2); !l.OK() || l.Remaining != 2 || l.Total != 3 {
		t.Errorf("refused with all UP: %s", l)
	}
}

// Drained, in maintenance, DOWN and going-down servers are not UP; "no
// check" is (HAProxy sends it traffic).
func TestLeaveCountsOnlyUp(t *testing.T) {
	p := NewPool("compilers", []LBStat{{"lb1", statOf(t, map[string]string{
		"c1": "UP", "c2": "UP", "c3": "DRAIN", "c4": "MAINT", "c5": "DOWN", "c6": "UP 1/3", "c7": "no check", "c8": "NOLB",
	})}})
	l := p.Leave("c1", "drain", 2)
	if l.Remaining != 2 || l.Total != 8 || !l.OK() {
		t.Fatalf("%s", l)
	}
	if !strings.Contains(l.String(), "(c3 DRAIN, c4 MAINT, c5 DOWN, c6 UP 1/3, c8 NOLB)") {
		t.Errorf("%s", l)
	}
	if l := p.Leave("c1", "maint", 3); l.OK() ||
		l.String() != "putting c1 in maintenance would leave 2 of 8 compilers UP (c3 DRAIN, c4 MAINT, c5 DOWN, c6 UP 1/3, c8 NOLB), below min_ready 3" {
		t.Errorf("%s", l)
	}
}

// A server no HAProxy has UP takes nothing away: it may leave even when
// the others are short (a compiler stuck in maintenance can be worked on).
func TestLeaveOfAServerAlreadyOut(t *testing.T) {
	for _, own := range []string{"MAINT", "DRAIN", "DOWN", ""} {
		status := map[string]string{"compile1": "UP", "compile3": "DOWN"}
		if own != "" {
			status["compile2"] = own
		}
		p := NewPool("compilers", []LBStat{{"lb1", statOf(t, status)}})
		l := p.Leave("compile2", "drain", 2)
		if !l.OK() || l.InPool || !strings.Contains(l.String(), "takes nothing from the pool") {
			t.Errorf("compile2 %q: %s", own, l)
		}
	}
	// the control: UP, the same others: refused
	p := NewPool("compilers", []LBStat{{"lb1", statOf(t, map[string]string{"compile1": "UP", "compile2": "UP", "compile3": "DOWN"})}})
	if p.Leave("compile2", "drain", 2).OK() {
		t.Error("an UP compile2 allowed to leave")
	}
}

// With two HAProxies a server counts only when both have it UP; the server
// leaving is in the pool when either has it UP.
func TestLeaveTwoLBs(t *testing.T) {
	p := NewPool("compilers", []LBStat{
		{"lb1", statOf(t, map[string]string{"compile1": "UP", "compile2": "UP", "compile3": "UP"})},
		{"lb2", statOf(t, map[string]string{"compile1": "UP", "compile2": "DOWN", "compile3": "DOWN"})},
	})
	l := p.Leave("compile2", "drain", 2)
	want := "draining compile2 would leave 1 of 3 compilers UP (compile3 DOWN on lb2), below min_ready 2"
	if l.OK() || !l.InPool || l.String() != want {
		t.Errorf("got  %s\nwant %s", l, want)
	}
	p = NewPool("compilers", []LBStat{
		{"lb1", statOf(t, map[string]string{"compile1": "UP", "compile2": "UP", "compile3": "UP"})},
		{"lb2", statOf(t, map[string]string{"compile1": "UP", "compile2": "UP"})},
	})
	if l := p.Leave("compile2", "drain", 2); l.OK() || !strings.Contains(l.String(), "(compile3 absent on lb2)") {
		t.Errorf("%s", l)
	}
	p = NewPool("compilers", []LBStat{
		{"lb1", statOf(t, map[string]string{"compile1": "UP", "compile2": "UP", "compile3": "UP"})},
		{"lb2", statOf(t, map[string]string{"compile1": "UP", "compile2": "UP", "compile3": "UP"})},
	})
	if l := p.Leave("compile2", "drain", 2); !l.OK() || l.Remaining != 2 {
		t.Errorf("%s", l)
	}
}

// Another backend's servers are not counted.
func TestLeaveOtherBackend(t *testing.T) {
	stat := statOf(t, map[string]string{"compile1": "UP", "compile2": "UP"}) +
		strings.ReplaceAll(statOf(t, map[string]string{"ca1": "UP", "ca2": "UP"}), "\ncompilers,", "\nca,")
	p := NewPool("compilers", []LBStat{{"lb1", stat}})
	if l := p.Leave("compile2", "drain", 2); l.OK() || l.Total != 2 || l.Remaining != 1 {
		t.Errorf("%s %v", l, p.Servers)
	}
}
