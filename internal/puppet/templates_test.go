package puppet

import (
	"io/fs"
	"maps"
	"strings"
	"testing"

	troupe "github.com/troupe/troupe"
	"github.com/troupe/troupe/internal/render"
)

// TestRoleTemplates renders every shipped config template for every flavor
// and server role, as the roles do: a missing key or a broken template
// fails here instead of on a host.
func TestRoleTemplates(t *testing.T) {
	files, err := fs.Glob(troupe.Content, "roles/templates/*.tmpl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	host := func(name, addr string) map[string]any {
		short, _, _ := strings.Cut(name, ".")
		return map[string]any{"name": name, "short": short, "address": addr}
	}
	for _, flavor := range FlavorNames() {
		for _, role := range []string{"ca", "compiler"} {
			for _, route := range []string{"direct", "sni"} {
				fl, _ := Lookup(flavor)
				f := fl.Data()
				paths := f["paths"].(map[string]any)
				ssl := paths["ssldir"].(string)
				// a register as templates see it: data, and its keys beside it
				pcfg := map[string]any{
					"codedir": paths["codedir"], "hostcert": ssl + "/certs/compile1.example.com.pem",
					"hostprivkey": ssl + "/private_keys/compile1.example.com.pem", "localcacert": ssl + "/certs/ca.pem",
					"hostcrl": ssl + "/crl.pem", "cadir": paths["cadir"],
				}
				pcfg["data"] = maps.Clone(pcfg)
				data := map[string]any{
					"flavor": f,
					"host":   host("compile1.example.com", "10.0.0.11"),
					"groups": map[string]any{
						"ca":        []any{host("ca.example.com", "10.0.0.10")},
						"compilers": []any{host("compile1.example.com", "10.0.0.11"), host("compile2.example.com", "10.0.0.12")},
						// keepalived.conf's peers: every load balancer but this host.
						"loadbalancer": []any{host("compile1.example.com", "10.0.0.11"), host("lb2.example.com", "10.0.0.21")},
					},
					"vars": map[string]any{
						"server_role": role, "tls12_only": true, "lb_timeout": "10m", "lb_socket": "/run/haproxy/admin.sock",
						"ca_route": route, "ca_backend": "ca", "ca_name": "ca.example.com", "control_repo": "https://git.example.com/control.git",
						"r10k_cachedir": "/var/cache/r10k", "lb_state_file": "/var/lib/haproxy/server-state",
						"lb_vip": "10.0.0.29/24", "lb_vrrp_id": 51,
					},
					"registered": map[string]any{"interface": map[string]any{"stdout": "eth0\n"}, "pcfg": pcfg},
					"site":       map[string]any{"database": "db.example.com", "puppetdb": "compile1.example.com"},
				}
				for _, name := range files {
					b, _ := fs.ReadFile(troupe.Content, name)
					out, err := render.File(name, string(b), maps.Clone(data))
					if err != nil {
						t.Errorf("%s/%s/%s: %v", flavor, role, name, err)
						continue
					}
					check(t, flavor+"/"+role+"/"+route+"/"+name, string(out), role, route)
				}
			}
		}
	}
}

func check(t *testing.T, label, out, role, route string) {
	t.Helper()
	must := func(ok bool, what string) {
		if !ok {
			t.Errorf("%s: %s\n%s", label, what, out)
		}
	}
	switch {
	case strings.HasSuffix(label, "webserver.conf.tmpl"):
		n := strings.Count(out, "ssl-cert:") + strings.Count(out, "ssl-key:") + strings.Count(out, "ssl-ca-cert:") + strings.Count(out, "ssl-crl-path:")
		must(n == 0 && role == "ca" || n == 4 && role == "compiler", "SSL paths: all four on compilers, none on the CA")
		must(strings.Contains(out, "ssl-protocols: [TLSv1.2]"), "TLS 1.2")
	case strings.HasSuffix(label, "puppetdb-database.ini.tmpl"):
		// the host renders as site.puppetdb: the one migrator; by certificate, no password
		must(strings.Count(out, "subname = //db.example.com:5432/puppetdb?ssl=true&") == 2, "both pools at the database host over TLS")
		must(strings.Count(out, "sslmode=verify-full") == 2 && strings.Count(out, "/private.pk8") == 2, "verified TLS, the PKCS#8 key")
		must(strings.Contains(out, "\nmigrate = true\n") && !strings.Contains(out, "password ="), "the migrator, no password")
	case strings.HasSuffix(label, "ca.cfg.tmpl"):
		enabled := strings.Contains(out, "\npuppetlabs.services.ca.certificate-authority-service/")
		disabled := strings.Contains(out, "\npuppetlabs.services.ca.certificate-authority-disabled-service/")
		must(enabled == (role == "ca") && disabled == (role == "compiler"), "CA service on the CA only")
		must(strings.Contains(out, "\npuppetlabs.trapperkeeper.services.watcher.filesystem-watch-service/"), "filesystem watcher kept")
	case strings.HasSuffix(label, "haproxy.cfg.tmpl"):
		for _, s := range []string{"mode tcp", "balance leastconn", "option httpchk GET /status/v1/simple",
			"http-check expect string running", "check-ssl verify none", "timeout server 10m", "level admin",
			"server compile1 10.0.0.11:8140", "server compile2 10.0.0.12:8140"} {
			must(strings.Contains(out, s), s)
		}
		must(strings.Contains(out, "req.ssl_sni -i ca.example.com") == (route == "sni"), "SNI route only with ca_route sni")
		must(strings.Contains(out, "server ca 10.0.0.10:8140 check") == (route == "sni"), "the SNI route goes to the CA (ca_backend)")
		must(strings.Contains(out, "server-state-file /var/lib/haproxy/server-state") &&
			strings.Contains(out, "load-server-state-from-file global"), "runtime states kept across a reload")
	case strings.HasSuffix(label, "haproxy-state.conf.tmpl"):
		// The configuration is checked, then the states saved, then the new process started.
		check := strings.Index(out, "ExecReload=/usr/sbin/haproxy -Ws -f $CONFIG -c")
		save := strings.Index(out, `echo "show servers state" | socat stdio unix-connect:/run/haproxy/admin.sock > /var/lib/haproxy/server-state.new`)
		signal := strings.Index(out, "ExecReload=/bin/kill -USR2 $MAINPID")
		must(strings.Contains(out, "\nExecReload=\n") && check > 0 && check < save && save < signal, "reload: reset, check, save, signal")
		must(strings.Contains(out, "ExecStartPre=/bin/rm -f /var/lib/haproxy/server-state\n"), "a start begins from the configuration")
	case strings.HasSuffix(label, "keepalived.conf.tmpl"):
		for _, s := range []string{"interface eth0\n", "virtual_router_id 51\n", "nopreempt", "10.0.0.29/24", "unicast_peer {\n        10.0.0.21\n    }"} {
			must(strings.Contains(out, s), s)
		}
		must(!strings.Contains(out, "10.0.0.11"), "this host is not its own peer")
	case strings.HasSuffix(label, "r10k.yaml.tmpl"):
		must(strings.Contains(out, "remote: https://git.example.com/control.git"), "remote")
		must(strings.Contains(out, "/code/environments"), "basedir")
	}
}
