package step

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/transport"
)

// Wait polls until a TCP port opens, an HTTP(S) URL answers with the expected
// status and body, or a command exits 0 — or fails at the timeout with the
// last thing it saw. Checks run on the host itself by default (it resolves
// the site's names and sits inside its firewall); `from: local` runs them here.
type Wait struct {
	TCP      string `yaml:"tcp"`   // host:port
	URL      string `yaml:"url"`   // http:// or https:// (certificates are not verified: health endpoints are)
	HTTPS    string `yaml:"https"` // shorthand for url with https
	Expect   string `yaml:"expect"`
	Status   int    `yaml:"status"` // default 200
	Command  string `yaml:"command"`
	Timeout  string `yaml:"timeout"`  // default 5m
	Interval string `yaml:"interval"` // default 2s
	From     string `yaml:"from"`     // host (default) | local
	// While is a command on the host that must keep succeeding as the wait
	// goes on; when it fails, the wait gives up at once rather than at its
	// timeout. A server gate waits while its service is active: a JVM that
	// died on a broken config fails the gate in seconds, not in minutes.
	While string `yaml:"while"`
}

func (w *Wait) ReadOnly() bool { return true }

func (w *Wait) Title() string {
	switch {
	case w.TCP != "":
		return "Wait for " + w.TCP
	case w.url() != "":
		return "Wait for " + w.url()
	}
	return "Wait for " + short(w.Command)
}

func (w *Wait) url() string {
	if w.HTTPS != "" {
		return w.HTTPS
	}
	return w.URL
}

func (w *Wait) Validate() error {
	n := 0
	for _, s := range []string{w.TCP, w.url(), w.Command} {
		if s != "" {
			n++
		}
	}
	if n != 1 || (w.URL != "" && w.HTTPS != "") {
		return errors.New("set exactly one of tcp, url (or https) and command")
	}
	for _, d := range []string{w.Timeout, w.Interval} {
		if err := checkDuration(d); err != nil {
			return err
		}
	}
	if w.From != "" && w.From != "host" && w.From != "local" {
		return fmt.Errorf("from %q: want host or local", w.From)
	}
	if w.While != "" && w.From == "local" {
		return errors.New("while runs on the host: not with from local")
	}
	return nil
}

func (w *Wait) Run(ctx context.Context, x *Exec) (Result, error) {
	timeout, err := x.Duration(w.Timeout, 5*time.Minute)
	if err != nil {
		return Result{}, err
	}
	interval, err := x.Duration(w.Interval, 2*time.Second)
	if err != nil {
		return Result{}, err
	}
	target, err := x.Render(w.TCP + w.url() + w.Command)
	if err != nil {
		return Result{}, err
	}
	while, err := x.Render(w.While)
	if err != nil {
		return Result{}, err
	}
	deadline := time.Now().Add(timeout)
	start := time.Now()
	for {
		ok, seen, whileExit, err := w.check(ctx, x, target, while)
		if err != nil {
			return Result{}, err
		}
		if ok {
			return Result{Msg: fmt.Sprintf("ready after %s", time.Since(start).Round(100*time.Millisecond))}, nil
		}
		if x.Unapplied { // --noop after changes it only showed: what it waits for may be one of them
			return Result{Skip: fmt.Sprintf("--noop: not ready now (%s), before the changes shown above; the run would wait up to %s", seen, timeout)}, nil
		}
		if while != "" && whileExit < 0 { // the probe ended before it could tell
			res, err := x.Probe(ctx, while)
			if err != nil {
				return Result{}, err
			}
			whileExit = res.ExitCode
		}
		if while != "" && whileExit != 0 {
			return Result{}, fmt.Errorf("gave up after %s: %q failed (exit %d), last seen: %s",
				time.Since(start).Round(100*time.Millisecond), while, whileExit, seen)
		}
		if time.Now().After(deadline) {
			return Result{}, fmt.Errorf("not ready after %s: %s", timeout, seen)
		}
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// whileMark ends the stderr of a probe that ran the while command too,
// before that command's exit status.
const whileMark = "troupe-wait-while-exit="

// probe runs cmd on the host. With while set, the while command runs after
// it in the same session (one session per poll, not two), in a subshell of
// its own as cmd is (an exit in either ends only that), and whileExit is its
// exit status; -1 when it did not tell.
func probe(ctx context.Context, x *Exec, cmd, while string) (res transport.Result, whileExit int, err error) {
	if while == "" {
		res, err = x.Probe(ctx, cmd)
		return res, -1, err
	}
	line := "(\n" + cmd + "\n)\nrc=$?\n(\n" + while + "\n) </dev/null >/dev/null 2>&1\n" +
		"printf '\\n" + whileMark + "%d\\n' $? >&2\nexit $rc"
	res, err = x.Probe(ctx, line)
	if err != nil {
		return res, -1, err
	}
	whileExit = -1
	i := strings.LastIndex(res.Stderr, "\n"+whileMark)
	if i < 0 {
		return res, -1, nil
	}
	if n, err := strconv.Atoi(strings.TrimSpace(res.Stderr[i+1+len(whileMark):])); err == nil {
		whileExit = n
	}
	res.Stderr = res.Stderr[:i]
	return res, whileExit, nil
}

// check makes one attempt; seen describes what it found when not ready.
// While, when set, runs in the same probe (see probe); whileExit is its
// exit status, -1 when it did not run.
func (w *Wait) check(ctx context.Context, x *Exec, target, while string) (ready bool, seen string, whileExit int, err error) {
	status := w.Status
	if status == 0 {
		status = 200
	}
	expect, err := x.Render(w.Expect)
	if err != nil {
		return false, "", -1, err
	}
	local := w.From == "local"
	switch {
	case w.TCP != "" && local:
		c, err := net.DialTimeout("tcp", target, 3*time.Second)
		if err != nil {
			return false, err.Error(), -1, nil
		}
		c.Close()
		return true, "", -1, nil
	case w.TCP != "":
		host, port, err := net.SplitHostPort(target)
		if err != nil {
			return false, "", -1, err
		}
		res, whileExit, err := probe(ctx, x, fmt.Sprintf("timeout 3 bash -c '</dev/tcp/%s/%s' 2>&1", host, port), while)
		if err != nil {
			return false, "", -1, err
		}
		return res.ExitCode == 0, strings.TrimSpace(res.Stdout), whileExit, nil
	case w.Command != "":
		res, whileExit, err := probe(ctx, x, target, while)
		if err != nil {
			return false, "", -1, err
		}
		return res.ExitCode == 0, fmt.Sprintf("exit %d: %s", res.ExitCode, lastLine(res.Stderr+res.Stdout)), whileExit, nil
	}
	var body string
	var code int
	if local {
		body, code, err = httpGet(ctx, target)
		if err != nil {
			return false, err.Error(), -1, nil
		}
	} else {
		var res transport.Result
		res, whileExit, err = probe(ctx, x, "curl -sk --max-time 10 -w '\\n%{http_code}' "+render.ShellQuote(target), while)
		if err != nil {
			return false, "", -1, err
		}
		out := strings.TrimRight(res.Stdout, "\n")
		i := strings.LastIndex(out, "\n")
		body, code = out[:max(i, 0)], atoi(out[i+1:])
		if res.ExitCode != 0 {
			return false, fmt.Sprintf("curl exit %d", res.ExitCode), whileExit, nil
		}
	}
	if code != status {
		return false, fmt.Sprintf("HTTP %d %s", code, lastLine(body)), whileExit, nil
	}
	if expect != "" && !strings.Contains(body, expect) {
		return false, fmt.Sprintf("body %q lacks %q", lastLine(body), expect), whileExit, nil
	}
	return true, "", whileExit, nil
}

func httpGet(ctx context.Context, url string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	// Health endpoints answer with the site's own CA; this check reads a
	// status word, it trusts nothing it receives.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return string(b), resp.StatusCode, nil
}

func atoi(s string) int { n, _ := strconv.Atoi(strings.TrimSpace(s)); return n }

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
