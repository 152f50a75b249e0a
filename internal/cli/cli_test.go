package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/sshtest"
)

// These tests run the real troupe binary against Debian's real sshd on
// loopback, as an operator would.

var troupeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "troupe-cli-test")
	if err != nil {
		panic(err)
	}
	troupeBin = filepath.Join(dir, "troupe")
	if out, err := exec.Command("go", "build", "-o", troupeBin, "../../cmd/troupe").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build troupe: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func troupe(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(troupeBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errOut.String(), code}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	tokenSecret = "tok-9f8e7d6c5b4a"
	dbSecret    = "db-Zq81-secret"
	certSecret  = "-----BEGIN TEST CERT-----\nQUJDREVGR0hJSktMTU5PUA==\nmulti-line-cert-line3\n-----END TEST CERT-----"
)

func TestSecretsNeverShownAgainstOpenSSH(t *testing.T) {
	sshd := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{PasswordUser: true})
	dir := t.TempDir()
	psFile := filepath.Join(dir, "ps.txt")
	write(t, filepath.Join(dir, "content", "plans", "leak.yaml"), `name: leak
params:
  token: {type: secret}
  pin: {type: secret}
steps:
  - id: print
    targets: all
    command: "echo token={{ .params.token }} db={{ .vars.db_password }}; id -u"
  - id: argv
    targets: all
    command: "echo {{ .params.token }} >/dev/null; ps -eo args > `+psFile+`; printf '%s\n' '{{ .vars.cert }}'"
    register: out
  - id: fail-loudly
    targets: all
    command: "echo {{ .params.token }} {{ .vars.db_password }} >&2; printf '%s\n' '{{ .vars.cert }}' >&2; exit 1"
`)
	os.MkdirAll(filepath.Join(dir, "content", "roles"), 0o755)
	inv := filepath.Join(dir, "inventory.yaml")
	write(t, inv, fmt.Sprintf(`version: 1
config:
  ssh:
    user: %s
    port: %d
    private_key: %s
    known_hosts: %s
    sudo: true
    sudo_password_env: TEST_SUDO_PW
groups:
  web:
    targets: [{name: target, address: 127.0.0.1}]
    vars:
      db_password: {env: TEST_DB_PW}
      cert: {env: TEST_CERT}
`, sshtest.PwUser, sshd.Port, sshd.KeyFile, sshd.KnownHosts))
	env := []string{"TEST_SUDO_PW=" + sshtest.PwPassword, "TEST_DB_PW=" + dbSecret, "TROUPE_PARAM_TOKEN=" + tokenSecret, "HOME=" + dir,
		"TEST_CERT=" + certSecret, "TROUPE_PARAM_PIN=123"}
	state := filepath.Join(dir, "state")
	common := []string{"--content", filepath.Join(dir, "content"), "--state-dir", state, "run", "leak", "-i", inv}

	human := troupe(t, env, common...)
	jsonRun := troupe(t, env, append(common, "--format", "json")...)
	logs, _ := filepath.Glob(filepath.Join(state, "logs", "*.log"))
	if len(logs) != 2 {
		t.Fatalf("want a debug log per run, got %v", logs)
	}
	var logText string
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		logText += string(b)
	}
	journals, _ := filepath.Glob(filepath.Join(state, "journal", "*.ndjson"))
	if len(journals) != 1 {
		t.Fatalf("want one journal, got %v", journals)
	}
	journal, _ := os.ReadFile(journals[0])
	// the command holding the token went to the host on stdin, not in argv
	ps, err := os.ReadFile(psFile)
	if err != nil || !strings.Contains(string(ps), "head -c") {
		t.Fatalf("the argv step did not run as expected: %v\n%s", err, ps)
	}
	secrets := append([]string{tokenSecret, dbSecret, sshtest.PwPassword}, strings.Split(certSecret, "\n")...)
	for name, text := range map[string]string{"human stdout": human.stdout, "human stderr": human.stderr, "json": jsonRun.stdout, "json stderr": jsonRun.stderr,
		"log": logText, "journal": string(journal), "ps on the host": string(ps)} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s shows the secret %q", name, s)
			}
		}
		if name != "human stderr" && name != "json stderr" && name != "ps on the host" && !strings.Contains(text, "********") {
			t.Errorf("%s: want the masked value shown as ********", name)
		}
	}
	if strings.Count(human.stderr, "shorter than 4 characters") != 1 {
		t.Errorf("want one warning about the 3-character secret:\n%s", human.stderr)
	}
	// the commands did run, as root through sudo with the password on stdin
	if !strings.Contains(logText, "token=******** db=********") || !regexp.MustCompile(`(?m)\| 0$|stdout.*\b0\b`).MatchString(logText+human.stdout) {
		t.Errorf("the print step's output is missing:\n%s", human.stdout)
	}
	if human.code != 1 || jsonRun.code != 1 {
		t.Errorf("a failed step must exit 1: human %d, json %d", human.code, jsonRun.code)
	}
	if !strings.Contains(human.stdout, "fail-loudly") || !strings.Contains(human.stderr, "--resume") {
		t.Errorf("the report must name the failed step and stderr say how to resume:\n%s\n%s", human.stdout, human.stderr)
	}
	if strings.Count(human.stdout+human.stderr, "run failed at step") != 1 {
		t.Errorf("the error must be printed once:\n%s\n%s", human.stdout, human.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(jsonRun.stdout), "\n") {
		if !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "}") {
			t.Errorf("json output has a non-JSON line: %q", line)
		}
	}
}

func TestBadPlanStopsBeforeConnecting(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "content", "plans", "bad.yaml"), `name: bad
steps:
  - id: one
    targets: all
    command: uptime
    seriall: 2
`)
	os.MkdirAll(filepath.Join(dir, "content", "roles"), 0o755)
	inv := filepath.Join(dir, "inventory.yaml")
	// 192.0.2.1 (TEST-NET-1) is never dialled: validation fails first.
	write(t, inv, "version: 1\ngroups:\n  web:\n    targets: [{name: web1, address: 192.0.2.1}]\n")
	r := troupe(t, nil, "--content", filepath.Join(dir, "content"), "--state-dir", filepath.Join(dir, "state"), "run", "bad", "-i", inv)
	if r.code != 2 {
		t.Errorf("exit code %d, want 2", r.code)
	}
	if !regexp.MustCompile(`bad\.yaml:6:5: .*seriall`).MatchString(r.stderr) || !strings.Contains(r.stderr, ">") || !strings.Contains(r.stderr, "^") {
		t.Errorf("want file:line:col, the message and an excerpt with a caret:\n%s", r.stderr)
	}
}

func TestUnreachableHostChangesNothing(t *testing.T) {
	port, err := sshtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, key, err := sshtest.WriteClientKey(dir, "") // credentials are checked before dialling
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inventory.yaml")
	write(t, inv, fmt.Sprintf("version: 1\nconfig: {ssh: {port: %d, connect_timeout: 2s, known_hosts: %s/kh, private_key: %s}}\ngroups:\n  web:\n    targets: [{name: web1, address: 127.0.0.1}]\n", port, dir, key))
	write(t, filepath.Join(dir, "kh"), "")
	r := troupe(t, []string{"HOME=" + dir}, "--state-dir", filepath.Join(dir, "state"), "run", "ping", "-i", inv)
	if r.code != 1 || !strings.Contains(r.stdout, "cannot reach 1 of 1 hosts; nothing was changed") || !strings.Contains(r.stdout, "web1") {
		t.Errorf("code %d stdout:\n%s", r.code, r.stdout)
	}
	if strings.Contains(r.stderr, "--resume") {
		t.Errorf("nothing ran, so there is nothing to resume:\n%s", r.stderr)
	}
}

func TestEncryptedKeyWithoutTerminalOrEnv(t *testing.T) {
	dir := t.TempDir()
	_, key, err := sshtest.WriteClientKey(dir, "open-sesame")
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inventory.yaml")
	write(t, inv, fmt.Sprintf("version: 1\nconfig: {ssh: {private_key: %s}}\ngroups:\n  web:\n    targets: [{name: web1, address: 192.0.2.1}]\n", key))
	r := troupe(t, nil, "--state-dir", filepath.Join(dir, "state"), "run", "ping", "-i", inv)
	if r.code != 2 || !strings.Contains(r.stderr, "is encrypted: set passphrase_env") {
		t.Errorf("code %d stderr:\n%s", r.code, r.stderr)
	}
}

func TestShippedPlansValidateAgainstTheExampleInventory(t *testing.T) {
	inv, err := filepath.Abs("../../inventory/site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // no plans/ here: the embedded ones are checked
	list := exec.Command(troupeBin, "plan", "list")
	list.Dir = dir
	out, err := list.Output()
	if err != nil {
		t.Fatal(err)
	}
	var plans []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		plans = append(plans, strings.Fields(l)[0])
	}
	if !slices.Contains(plans, "bootstrap") {
		t.Fatalf("bootstrap is not shipped: %v", plans)
	}
	cmd := exec.Command(troupeBin, append([]string{"plan", "validate", "-i", inv}, plans...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shipped plans do not validate against inventory/site.yaml: %v\n%s", err, out)
	}
}

func TestSchemaPrintsJSON(t *testing.T) {
	for _, kind := range []string{"plan", "role", "inventory"} {
		r := troupe(t, nil, "schema", kind)
		var s map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || r.code != 0 || s["title"] != "troupe "+kind {
			t.Errorf("%s: code %d, %v, title %v", kind, r.code, err, s["title"])
		}
	}
	if r := troupe(t, nil, "schema", "playbook"); r.code == 0 {
		t.Error("unknown schema accepted")
	}
}

func TestInventoryGraphPrintsTheGoldenFile(t *testing.T) {
	for format, golden := range map[string]string{"mermaid": "graph_site.mmd", "dot": "graph_site.dot"} {
		want, err := os.ReadFile(filepath.Join("../../fixtures/golden", golden))
		if err != nil {
			t.Fatal(err)
		}
		r := troupe(t, nil, "inventory", "graph", "-i", "../../inventory/site.yaml", "--format", format)
		if r.code != 0 || r.stdout != string(want) {
			t.Errorf("%s: code %d, stdout differs from %s:\n%s%s", format, r.code, golden, r.stdout, r.stderr)
		}
	}
}

func TestCompletionScriptsNameEveryCommand(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := troupe(t, nil, "completion", shell)
		if r.code != 0 {
			t.Fatalf("%s: code %d\n%s", shell, r.code, r.stderr)
		}
		for _, cmd := range []string{"run", "plan", "list", "validate", "inventory", "graph", "webhook", "serve", "schema", "completion", "lab", "status", "version"} {
			if !regexp.MustCompile(`\b` + cmd + `\b`).MatchString(r.stdout) {
				t.Errorf("%s script does not mention %q", shell, cmd)
			}
		}
	}
	// and bash completes the real tree
	file := filepath.Join(t.TempDir(), "troupe.bash")
	write(t, file, troupe(t, nil, "completion", "bash").stdout)
	out, err := exec.Command("bash", "-c", `source "$1"; COMP_WORDS=(troupe inventory ""); COMP_CWORD=2; _troupe; echo "${COMPREPLY[*]}"`, "bash", file).Output()
	if err != nil || strings.TrimSpace(string(out)) != "show graph" {
		t.Errorf("troupe inventory <TAB>: %q %v", out, err)
	}
}
