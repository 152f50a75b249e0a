package puppet

import (
	"fmt"
	"io/fs"
	"testing"

	"github.com/goccy/go-yaml"
	troupe "github.com/troupe/troupe"
	"github.com/troupe/troupe/internal/render"
)

// TestRoleConditions renders the roles' restart, reload and refresh
// conditions for every combination of the results they read, against the
// guarded form they had when a skipped step registered nothing: a skipped
// step now registers {skipped: true, changed: false}, and the conditions,
// without their `has` guards, must decide exactly as before.
func TestRoleConditions(t *testing.T) {
	for _, c := range []struct {
		role, step, field string
		before            string   // the condition when a skipped step registered nothing
		always            []string // registers of steps that always run first
		maybe             []string // registers of steps that may be skipped
	}{
		{
			role: "puppetserver", step: "restart", field: "when",
			before: `{{ and (not .registered.start.changed)
             (or (and (has "java_args" .registered) .registered.java_args.changed) .registered.ca_cfg.changed .registered.cert.changed) }}`,
			always: []string{"start", "ca_cfg", "cert"}, maybe: []string{"java_args"},
		},
		{
			role: "puppetserver", step: "reload", field: "when",
			before: `{{ and (not .registered.start.changed) (not (has "restart" .registered))
             (or .registered.webserver_conf.changed .registered.auth_rules.changed .registered.puppet_conf.changed
                 .registered.termini_conf.changed .registered.routes.changed
                 (and (has "ca_conf" .registered) .registered.ca_conf.changed)
                 (and (has "product_conf" .registered) .registered.product_conf.changed)
                 .registered.http_client.changed) }}`,
			always: []string{"start", "webserver_conf", "auth_rules", "puppet_conf", "termini_conf", "routes", "http_client"},
			maybe:  []string{"restart", "ca_conf", "product_conf"},
		},
		{
			role: "puppetdb", step: "restart", field: "when",
			before: `{{ and (not .registered.start.changed)
             (or .registered.database.changed .registered.remote_ini.changed .registered.ssl.changed .registered.jetty.changed
                 (and (has "config" .registered) .registered.config.changed)
                 (and (has "java_args" .registered) .registered.java_args.changed)) }}`,
			always: []string{"start", "database", "remote_ini", "ssl", "jetty"}, maybe: []string{"config", "java_args"},
		},
		{
			role: "package-source", step: "apt-update", field: "unless",
			before: `{{ if or (and (has "site_repo" .registered) .registered.site_repo.changed)
               (and (has "release" .registered) .registered.release.changed) }}false{{ else }}ls /var/lib/apt/lists/ | grep -q '_Packages$'{{ end }}`,
			maybe: []string{"site_repo", "release"},
		},
	} {
		now := roleField(t, c.role, c.step, c.field)
		keys := append(append([]string{}, c.always...), c.maybe...)
		// each always-run step unchanged or changed; each maybe-skipped
		// step also skipped: 2^len(always) * 3^len(maybe) cases
		states := make([]int, len(keys))
		for {
			old, reg := map[string]any{}, map[string]any{}
			for i, k := range keys {
				switch states[i] {
				case 0, 1:
					v := map[string]any{"changed": states[i] == 1, "skipped": false, "failed": false}
					old[k], reg[k] = v, v
				case 2:
					reg[k] = map[string]any{"changed": false, "skipped": true, "failed": false, "msg": "when is false"}
				}
			}
			want, err := render.String(c.before, map[string]any{"registered": old})
			if err != nil {
				t.Fatalf("%s/%s before: %v", c.role, c.step, err)
			}
			got, err := render.String(now, map[string]any{"registered": reg})
			if err != nil || got != want {
				t.Errorf("%s/%s %s with %s: got %q (%v), want %q", c.role, c.step, c.field, describe(keys, states), got, err, want)
			}
			if !next(states, len(c.always)) {
				break
			}
		}
	}
}

// next steps states like an odometer: the first always digits count to 1,
// the others to 2. It reports false after the last combination.
func next(states []int, always int) bool {
	for i := range states {
		top := 2
		if i < always {
			top = 1
		}
		if states[i] < top {
			states[i]++
			return true
		}
		states[i] = 0
	}
	return false
}

func describe(keys []string, states []int) string {
	s := ""
	for i, k := range keys {
		s += fmt.Sprintf("%s=%s ", k, []string{"ok", "changed", "skipped"}[states[i]])
	}
	return s
}

// roleField is one field of one step of a shipped role.
func roleField(t *testing.T, role, id, field string) string {
	t.Helper()
	b, err := fs.ReadFile(troupe.Content, "roles/"+role+".yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Steps []map[string]any `yaml:"steps"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", role, err)
	}
	for _, s := range doc.Steps {
		if s["id"] == id {
			v, _ := s[field].(string)
			if v == "" {
				t.Fatalf("%s/%s has no %s", role, id, field)
			}
			return v
		}
	}
	t.Fatalf("%s has no step %s", role, id)
	return ""
}
