package step

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/render"
)

// PuppetCertExpiry reports when the CA's certificates and CRLs run out, on
// the CA host: every certificate of ca_crt.pem (the bundle can hold a
// chain), the next update of ca_crl.pem and infra_crl.pem (when present),
// and every certificate in signed/ (servers and agents), read from `cadir`
// (`puppet config print cadir --section server`). One line per item, soonest
// first, marked EXPIRED or inside the horizon. It changes nothing; with
// fail_within it fails when anything is expired or inside the horizon (for
// cron and monitoring).
type PuppetCertExpiry struct {
	Horizon    string `yaml:"horizon"`     // "90d" (default), or a Go duration; a template is checked when rendered
	FailWithin string `yaml:"fail_within"` // true: fail when anything is expired or inside the horizon (default false)
}

func (p *PuppetCertExpiry) ReadOnly() bool { return true }
func (p *PuppetCertExpiry) Title() string  { return "Expiry of the CA's certificates and CRLs" }

func (p *PuppetCertExpiry) Validate() error {
	if err := checkHorizon(p.Horizon); err != nil {
		return err
	}
	if p.FailWithin != "" && !strings.Contains(p.FailWithin, "{{") {
		if _, err := strconv.ParseBool(p.FailWithin); err != nil {
			return fmt.Errorf("fail_within %q: want true or false", p.FailWithin)
		}
	}
	return nil
}

func (p *PuppetCertExpiry) Run(ctx context.Context, x *Exec) (Result, error) {
	hs, horizon, err := renderHorizon(x, p.Horizon, "90d")
	if err != nil {
		return Result{}, err
	}
	fw, err := x.Render(p.FailWithin)
	if err != nil {
		return Result{}, err
	}
	failWithin := false
	if fw = strings.TrimSpace(fw); fw != "" {
		if failWithin, err = strconv.ParseBool(fw); err != nil {
			return Result{}, fmt.Errorf("fail_within %q: want true or false", fw)
		}
	}

	s, err := puppetSettings(ctx, x, "server", "", "cadir")
	if err != nil {
		return Result{}, err
	}
	items, bad, err := caExpiries(ctx, x, s["cadir"])
	if err != nil {
		return Result{}, err
	}
	now := time.Now()
	puppet.SortExpiries(items)

	var inside, expired, certs, crls int
	rows := make([]any, 0, len(items))
	for _, e := range items {
		days, state := e.DaysLeft(now), e.State(now, horizon)
		mark := ""
		switch state {
		case puppet.ExpiryExpired:
			expired++
			mark = "  EXPIRED"
		case puppet.ExpiryInside:
			inside++
			mark = "  inside " + hs
		}
		label := "serial " + e.SerialHex()
		if e.Kind == "crl" {
			crls++
			label = "number " + e.SerialHex() + " in " + e.File
		} else {
			certs++
		}
		x.Emit(line("%s  %5d d  %-4s  %s  %s%s", e.NotAfter.UTC().Format(time.DateOnly), days, e.Kind, e.Name, label, mark))
		rows = append(rows, map[string]any{
			"name": e.Name, "kind": e.Kind, "serial": e.SerialHex(), "file": e.File,
			"not_after": e.NotAfter.UTC().Format(time.RFC3339), "days_left": days, "state": state,
		})
	}
	for _, b := range bad {
		x.Emit(line("unreadable  %s", b))
	}
	data := map[string]any{"items": rows, "inside": inside, "expired": expired, "soonest": "", "horizon": hs, "unreadable": bad}
	msg := plural(certs, "certificate") + ", " + plural(crls, "CRL")
	if len(items) > 0 {
		data["soonest"] = items[0].Name
		msg += fmt.Sprintf("; soonest %s (%s) %d d", items[0].Name, items[0].Kind, items[0].DaysLeft(now))
	}
	msg += fmt.Sprintf("; %d inside %s, %d expired", inside, hs, expired)
	if len(bad) > 0 {
		msg += fmt.Sprintf("; %d unreadable", len(bad))
	}
	res := Result{Msg: msg, Data: data}
	if len(bad) > 0 {
		return res, fmt.Errorf("%d files under %s unreadable: %s", len(bad), s["cadir"], strings.Join(bad, "; "))
	}
	if failWithin && inside+expired > 0 {
		return res, fmt.Errorf("%s (fail_within)", msg)
	}
	return res, nil
}

// caExpiries reads the CA's files from cadir: ca_crt.pem and ca_crl.pem must
// be there (this is the CA), infra_crl.pem may be, signed/ is listed with one
// command and each certificate downloaded over the connection (SFTP when it
// can). A file that does not parse is listed in bad rather than ending the
// report.
func caExpiries(ctx context.Context, x *Exec, cadir string) (items []puppet.Expiry, bad []string, err error) {
	if cadir == "" {
		return nil, nil, errors.New("puppet config print cadir: empty")
	}
	read := func(file string, required bool) ([]byte, error) {
		b, err := x.Conn.Download(ctx, path.Join(cadir, file), x.Sudo)
		switch {
		case err == nil:
			return b, nil
		case isNotExist(err) && !required:
			return nil, nil
		case isNotExist(err):
			return nil, fmt.Errorf("no %s in %s: is this the CA host?", file, cadir)
		}
		return nil, fmt.Errorf("read %s: %w", path.Join(cadir, file), err)
	}
	add := func(got []puppet.Expiry, err error) {
		if err != nil {
			bad = append(bad, err.Error())
		}
		items = append(items, got...)
	}
	for _, f := range []struct {
		file     string
		required bool
	}{{"ca_crt.pem", true}, {"ca_crl.pem", true}, {"infra_crl.pem", false}} {
		b, err := read(f.file, f.required)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case b == nil:
		case f.file == "ca_crt.pem":
			add(puppet.CertExpiries(b, "ca", f.file, ""))
		default:
			add(puppet.CRLExpiries(b, f.file))
		}
	}
	signed := path.Join(cadir, "signed")
	res, err := x.MustProbe(ctx, "ls -1 -- "+render.ShellQuote(signed))
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", signed, err)
	}
	for _, name := range strings.Split(res.Stdout, "\n") {
		name = strings.TrimSpace(name)
		certname, ok := strings.CutSuffix(name, ".pem")
		if !ok || certname == "" {
			continue
		}
		b, err := read(path.Join("signed", name), false)
		if err != nil {
			return nil, nil, err
		}
		if b != nil { // nil: cleaned since the listing
			add(puppet.CertExpiries(b, "cert", path.Join("signed", name), certname))
		}
	}
	return items, bad, nil
}

// plural is "1 thing" or "N things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// checkHorizon validates a horizon field at load time (N days or a Go
// duration), unless it is a template, decided when it is rendered.
func checkHorizon(v string) error {
	if v == "" || strings.Contains(v, "{{") {
		return nil
	}
	_, err := puppet.ParseHorizon(v)
	return err
}

// renderHorizon renders a horizon field (def when empty) and reads it.
func renderHorizon(x *Exec, field, def string) (string, time.Duration, error) {
	v, err := x.Render(dflt(field, def))
	if err != nil {
		return "", 0, err
	}
	v = strings.TrimSpace(v)
	d, err := puppet.ParseHorizon(v)
	return v, d, err
}
