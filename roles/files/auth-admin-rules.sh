# auth-admin-rules.sh AUTH_CONF — insert or refresh troupe's rules for the
# admin API in puppetserver's auth.conf: the packaged file has no rule for
# /puppet-admin-api, so its final deny applies to everyone (puppetlabs/puppetserver
# ezbake/config/conf.d/auth.conf). The rules sit in a marked
# block right after "rules: [", so the package's own rules stay as shipped.
# Allowed: the certnames of the CA and the compilers; for the CA CLI's
# endpoints, those of the CA and the standby CA. Prints CHANGED when it
# wrote the file.
set -eu
f=$1
begin='# BEGIN troupe admin-api rules'
end='# END troupe admin-api rules'
tmp=$(mktemp)
block=$(mktemp)
trap 'rm -f "$tmp" "$block"' EXIT
cat >"$block" <<'RULES'
        # BEGIN troupe admin-api rules (managed by troupe, see docs/guide.md)
        {
            match-request: {path: "/puppet-admin-api/v1/environment-cache", type: path, method: delete}
            allow: [{{ range .groups.ca }}"{{ .name }}", {{ end }}{{ range $i, $h := .groups.compilers }}{{ if $i }}, {{ end }}"{{ $h.name }}"{{ end }}]
            sort-order: 200
            name: "troupe environment-cache flush"
        },
        {
            match-request: {path: "/puppet-admin-api/v1/jruby-pool", type: path, method: delete}
            allow: [{{ range .groups.ca }}"{{ .name }}", {{ end }}{{ range $i, $h := .groups.compilers }}{{ if $i }}, {{ end }}"{{ $h.name }}"{{ end }}]
            sort-order: 200
            name: "troupe jruby-pool flush"
        },
        {
            # The CA CLI on a standby CA once ca-failover promoted it: its
            # certificate, signed by the CA like any host's, has no
            # pp_cli_auth extension (only the one `puppetserver ca setup`
            # made for the first CA has), which the packaged rules ask for.
            # Allowed by certname instead: the CA hosts, which hold the CA key.
            match-request: {path: "^/puppet-ca/v1/(certificate_status(es)?(/.*)?|clean|sign(/all)?)$", type: regex, method: [get, put, post, delete]}
            allow: [{{ range $i, $h := .groups.ca }}{{ if $i }}, {{ end }}"{{ $h.name }}"{{ end }}{{ range .groups.ca_standby }}, "{{ .name }}"{{ end }}]
            sort-order: 200
            name: "troupe CA CLI on the CA hosts"
        },
        {
            match-request: {path: "^/puppet-ca/v1/certificate_revocation_list$", type: regex, method: put}
            allow: [{{ range $i, $h := .groups.ca }}{{ if $i }}, {{ end }}"{{ $h.name }}"{{ end }}{{ range .groups.ca_standby }}, "{{ .name }}"{{ end }}]
            sort-order: 200
            name: "troupe CRL update on the CA hosts"
        },
        # END troupe admin-api rules
RULES
awk -v b="$begin" -v e="$end" -v bf="$block" '
  index($0, b) { skip = 1; next }
  skip && index($0, e) { skip = 0; next }
  skip { next }
  { print }
  !done && /rules[ \t]*:[ \t]*\[/ { while ((getline l < bf) > 0) print l; done = 1 }
' "$f" >"$tmp"
grep -qF "$begin" "$tmp" || { echo "$f has no 'rules: [' line; cannot add the admin-api rules" >&2; exit 1; }
if cmp -s "$tmp" "$f"; then
  echo "auth.conf admin-api rules up to date"
else
  cat "$tmp" >"$f"
  echo "CHANGED: auth.conf admin-api rules written"
fi
