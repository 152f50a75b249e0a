package plan

import (
	"fmt"
	"regexp"
	"strings"
)

// Typed strings: a param of type certname or serial is a string in the
// template scope, checked when it is bound (-p, a default, a sub-plan's
// literal or rendered value), so a value that would be read as something
// else (a host selector, a regular expression, an option) never reaches a
// step.

// maxCertname bounds a certname: Puppet sets no length, a DNS name has at
// most 253 characters, and a certname names files on every server.
const maxCertname = 253

// certnameRE is Puppet's rule for the certname setting ("lowercase letters,
// numbers, periods, underscores, and dashes", /\A[a-z0-9._-]+\Z/ in the
// configuration reference of puppet.conf's certname), with no leading '-'
// on top: puppetserver ca and openssl would read one as an option.
var certnameRE = regexp.MustCompile(`^[a-z0-9._][a-z0-9._-]*$`)

// serialRE is a certificate serial as openssl and puppetserver print it:
// hex digits, optionally 0x-prefixed or in colon-separated groups.
var serialRE = regexp.MustCompile(`^(0[xX])?[0-9A-Fa-f]+(:[0-9A-Fa-f]+)*$`)

// maxSerialDigits: RFC 5280 serials are at most 20 octets.
const maxSerialDigits = 40

// CheckCertname refuses what is not a certname by Puppet's rules.
func CheckCertname(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty certname")
	case len(s) > maxCertname:
		return fmt.Errorf("certname of %d characters: at most %d", len(s), maxCertname)
	case strings.HasPrefix(s, "-"):
		return fmt.Errorf("certname %q starts with '-'", s)
	case !certnameRE.MatchString(s):
		return fmt.Errorf("%q is not a certname: Puppet allows lower-case letters, digits, '.', '-' and '_'", s)
	}
	return nil
}

// CheckSerial refuses what is not a certificate serial; "" (none) passes.
func CheckSerial(s string) error {
	if s == "" {
		return nil
	}
	if !serialRE.MatchString(s) {
		return fmt.Errorf("%q is not a certificate serial: hex digits, as in 0x1F, 1f or 1f:a0", s)
	}
	digits := strings.TrimLeft(strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), ":", ""), "0")
	switch {
	case digits == "":
		return fmt.Errorf("serial %q is zero: no certificate has it", s)
	case len(digits) > maxSerialDigits:
		return fmt.Errorf("serial %q has %d hex digits: at most %d (20 octets)", s, len(digits), maxSerialDigits)
	}
	return nil
}

// checkTyped checks a string value of a typed-string param type.
func checkTyped(typ, s string) error {
	switch typ {
	case "certname":
		return CheckCertname(s)
	case "serial":
		return CheckSerial(s)
	}
	return nil
}

// isStringType: the types whose values are strings.
func isStringType(typ string) bool {
	switch typ {
	case "string", "secret", "certname", "serial":
		return true
	}
	return false
}

// TargetsData is the scope a step's targets (and a sub-plan's params)
// render in: the params alone. Targets are chosen before any host is in
// scope, so the loader refuses a targets template that reads anything
// else, and the runner renders them with this very function.
func TargetsData(params map[string]any) map[string]any {
	return map[string]any{"params": params}
}

// targetsRoots are the keys of TargetsData.
func targetsRoots() []string {
	var out []string
	for k := range TargetsData(nil) {
		out = append(out, k)
	}
	return out
}

// SubParams is the params a sub-plan include gives its plan, bound: each
// template rendered by render (the caller's TargetsData) and converted to
// the declared type as a -p value would be, the others as written, and the
// sub-plan's defaults (or its types' zero values) for the params not given.
func (s *Step) SubParams(render func(string) (string, error)) (map[string]any, error) {
	if !strings.HasPrefix(s.Source, "plan:") {
		return nil, nil // not a sub-plan: the params in force stay
	}
	out := map[string]any{}
	for _, p := range s.subParams {
		v, given := s.Params[p.Name]
		switch {
		case !given && p.Default != nil:
			out[p.Name] = p.Default
		case !given:
			out[p.Name] = zero(p.Type)
		default:
			if str, ok := v.(string); ok && strings.Contains(str, "{{") {
				text, err := render(str)
				if err != nil {
					return nil, fmt.Errorf("param %s of %s: %w", p.Name, s.Source, err)
				}
				if v, err = convert(p.Type, text); err != nil {
					return nil, fmt.Errorf("param %s of %s (%s): %w", p.Name, s.Source, p.Type, err)
				}
			}
			out[p.Name] = v
		}
	}
	return out, nil
}
