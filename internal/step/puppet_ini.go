package step

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// PuppetIni ensures settings in an INI-style file (puppet.conf,
// puppetdb.conf, PuppetDB's conf.d/*.ini) and leaves every other line alone:
// packages write their own keys there (the vendor postinst fills a [master]
// section: puppetlabs/puppetserver resources/ext/ezbake.conf) and an upgrade
// must find them. Values are
// templates; the file is written only when something differs.
type PuppetIni struct {
	Path     string                       `yaml:"path"`
	Settings map[string]map[string]string `yaml:"settings"` // section → key → value
	Absent   map[string][]string          `yaml:"absent"`   // section → keys to remove
	Mode     string                       `yaml:"mode"`
	Owner    string                       `yaml:"owner"`
	Group    string                       `yaml:"group"`
}

func (p *PuppetIni) Title() string { return "Settings in " + p.Path }

func (p *PuppetIni) Validate() error {
	if p.Path == "" {
		return errors.New("path is required")
	}
	if len(p.Settings) == 0 && len(p.Absent) == 0 {
		return errors.New("set settings, absent or both")
	}
	_, err := parseMode(p.Mode)
	return err
}

func (p *PuppetIni) Run(ctx context.Context, x *Exec) (Result, error) {
	path, err := x.Render(p.Path)
	if err != nil {
		return Result{}, err
	}
	old, err := x.Conn.Download(ctx, path, x.Sudo)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, fmt.Errorf("read %s: %w", path, err)
	}
	ini := parseINI(string(old))
	for _, sec := range sortedKeys(p.Settings) {
		for _, k := range sortedKeys(p.Settings[sec]) {
			v, err := x.Render(p.Settings[sec][k])
			if err != nil {
				return Result{}, fmt.Errorf("%s.%s: %w", sec, k, err)
			}
			ini.set(sec, k, v)
		}
	}
	for _, sec := range sortedKeys(p.Absent) {
		for _, k := range p.Absent[sec] {
			ini.remove(sec, k)
		}
	}
	return writeFile(ctx, x, path, []byte(ini.String()), p.Mode, p.Owner, p.Group)
}

// iniFile keeps every line as written; only the lines of managed keys change.
type iniFile struct{ lines []string }

func parseINI(s string) *iniFile {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return &iniFile{}
	}
	return &iniFile{lines: strings.Split(s, "\n")}
}

func (f *iniFile) String() string {
	if len(f.lines) == 0 {
		return ""
	}
	return strings.Join(f.lines, "\n") + "\n"
}

func sectionName(l string) (string, bool) {
	t := strings.TrimSpace(l)
	if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
		return strings.TrimSpace(t[1 : len(t)-1]), true
	}
	return "", false
}

func keyOf(l string) string {
	t := strings.TrimSpace(l)
	if t == "" || t[0] == '#' || t[0] == ';' {
		return ""
	}
	k, _, ok := strings.Cut(t, "=")
	if !ok {
		return ""
	}
	return strings.TrimSpace(k)
}

// span returns the section's line range [start, end): start is the first
// line after the header (0 for the unnamed top section), -1 if absent.
func (f *iniFile) span(sec string) (int, int) {
	start := -1
	if sec == "" {
		start = 0
	}
	for i, l := range f.lines {
		name, ok := sectionName(l)
		if !ok {
			continue
		}
		if start >= 0 {
			return start, i
		}
		if name == sec {
			start = i + 1
		}
	}
	if start < 0 {
		return -1, -1
	}
	return start, len(f.lines)
}

func (f *iniFile) set(sec, key, val string) {
	line := key + " = " + val
	start, end := f.span(sec)
	if start < 0 {
		if len(f.lines) > 0 && strings.TrimSpace(f.lines[len(f.lines)-1]) != "" {
			f.lines = append(f.lines, "")
		}
		f.lines = append(f.lines, "["+sec+"]", line)
		return
	}
	found := false
	for i := start; i < end; i++ {
		if keyOf(f.lines[i]) != key {
			continue
		}
		if !found {
			if f.lines[i] != line && !sameSetting(f.lines[i], val) {
				f.lines[i] = line
			}
			found = true
		} else {
			f.lines = append(f.lines[:i], f.lines[i+1:]...) // a later duplicate would win
			i--
			end--
		}
	}
	if found {
		return
	}
	at := end // after the section's last non-blank line
	for at > start && strings.TrimSpace(f.lines[at-1]) == "" {
		at--
	}
	f.lines = append(f.lines[:at], append([]string{line}, f.lines[at:]...)...)
}

// sameSetting: "key=value" and "key = value" mean the same; keep the operator's spelling.
func sameSetting(l, val string) bool {
	_, v, _ := strings.Cut(l, "=")
	return strings.TrimSpace(v) == val
}

func (f *iniFile) remove(sec, key string) {
	start, end := f.span(sec)
	if start < 0 {
		return
	}
	for i := start; i < end; i++ {
		if keyOf(f.lines[i]) == key {
			f.lines = append(f.lines[:i], f.lines[i+1:]...)
			i--
			end--
		}
	}
}
