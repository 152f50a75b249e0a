package lab

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The lab's HTTP file server (the Debian package mirror and the control
// repository for the hosts) is a detached process that outlives `troupe lab
// up`: the running binary re-executed as `<exe> lab serve-files DIR ADDR`.
// In troupe that is a hidden kong command (cli.LabServeFilesCmd); a test
// binary, which has no command tree, answers it from TestMain (MaybeServe).

// ServeArgs are the arguments that make the running executable the server.
func ServeArgs(dir, addr string) []string { return []string{"lab", "serve-files", dir, addr} }

// MaybeServe is for test binaries that start labs: called first in TestMain,
// it serves (and never returns) when the binary was started with ServeArgs.
// Otherwise it returns at once. troupe itself parses its arguments with kong.
func MaybeServe() {
	if a := os.Args[1:]; len(a) == 4 && a[0] == "lab" && a[1] == "serve-files" {
		err := Serve(a[2], a[3])
		fmt.Fprintf(os.Stderr, "troupe lab server: %v\n", err)
		os.Exit(1)
	}
}

// Serve serves dir over HTTP on addr until it fails.
func Serve(dir, addr string) error {
	srv := &http.Server{
		Addr:              addr,
		Handler:           logRequests(http.FileServer(http.Dir(dir))),
		ReadHeaderTimeout: 30 * time.Second,
	}
	fmt.Fprintf(os.Stderr, "%s troupe lab: serving %s on http://%s/\n", time.Now().Format(time.RFC3339), dir, addr)
	return srv.ListenAndServe()
}

func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: 200}
		h.ServeHTTP(sw, r)
		if sw.code >= 400 {
			fmt.Fprintf(os.Stderr, "%s %s %s %d\n", time.Now().Format("15:04:05"), r.RemoteAddr, r.URL.Path, sw.code)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(c int) { s.code = c; s.ResponseWriter.WriteHeader(c) }

func serverPIDFile(w string) string { return filepath.Join(w, "server.pid") }

// startServer starts the detached server (own session, output to
// WorkDir/server.log) and waits until probePath answers 200.
func startServer(workDir, addr, probePath string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(workDir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(exe, ServeArgs(wwwDir(workDir), addr)...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the lab HTTP server: %w", err)
	}
	go cmd.Wait() // reap it if it dies while we run
	if err := os.WriteFile(serverPIDFile(workDir), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return err
	}
	url := "http://" + addr + probePath
	client := &http.Client{Timeout: time.Second}
	for i := 0; i < 100; i++ {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			return fmt.Errorf("lab HTTP server: GET %s: %s", url, resp.Status)
		}
		if !procAlive(cmd.Process.Pid) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("lab HTTP server did not answer on %s: %s", url, tail(filepath.Join(workDir, "server.log"), 5))
}

// isOurServer: pid is a lab server for this WorkDir (checked in its command
// line, or in its environment for a server started by a troupe from before
// the serve-files command, which set TROUPE_LAB_SERVE_DIR instead).
func isOurServer(pid int, workDir string) bool {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		want := ServeArgs(wwwDir(workDir), "")[:3]
		if len(args) == 5 && slices.Equal(args[1:4], want) {
			return true
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if kv == "TROUPE_LAB_SERVE_DIR="+wwwDir(workDir) {
			return true
		}
	}
	return false
}

func stopServer(workDir string) error {
	pid := readPID(serverPIDFile(workDir))
	if pid > 0 && isOurServer(pid, workDir) {
		syscall.Kill(pid, syscall.SIGTERM)
		if !waitGone(pid, 5*time.Second) {
			syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 5*time.Second)
		}
	}
	// a server whose pid file was lost
	for _, p := range allPIDs() {
		if isOurServer(p, workDir) {
			syscall.Kill(p, syscall.SIGKILL)
			waitGone(p, 5*time.Second)
		}
	}
	os.Remove(serverPIDFile(workDir))
	return nil
}

func serverAlive(workDir string) bool {
	pid := readPID(serverPIDFile(workDir))
	return pid > 0 && procAlive(pid) && isOurServer(pid, workDir)
}

func tail(p string, n int) string {
	b, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func allPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// tcpUp reports whether something accepts TCP connections on addr.
func tcpUp(addr string, d time.Duration) bool {
	c, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
