#!/bin/sh
# plan-stats.sh [REV]: how much of the shipped plans and roles is template
# code: lines, template expressions ({{ … }}), expressions per line, and
# upgrade.yaml's length; of the working tree, or of git revision REV.
set -eu
cd "$(dirname "$0")/.."
files() {
	if [ -n "${1:-}" ]; then
		for f in $(git ls-tree -r --name-only "$1" -- plans roles | grep '\.yaml$'); do git show "$1:$f"; done
	else
		cat plans/*.yaml roles/*.yaml
	fi
}
upgrade() {
	if [ -n "${1:-}" ]; then git show "$1:plans/upgrade.yaml"; else cat plans/upgrade.yaml; fi
}
lines=$(files "${1:-}" | wc -l)
exprs=$(files "${1:-}" | grep -o '{{' | wc -l)
printf '%s: %d lines, %d template expressions (%.3f per line); upgrade.yaml %d lines, %d expressions\n' \
	"${1:-working tree}" "$lines" "$exprs" "$(awk "BEGIN{print $exprs / $lines}")" \
	"$(upgrade "${1:-}" | wc -l)" "$(upgrade "${1:-}" | grep -o '{{' | wc -l)"
