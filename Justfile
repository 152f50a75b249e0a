# troupe's recipes. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

bin := "bin/troupe"
# packages that need a lab (namespaces, root): run one at a time, they share the bridge
lab_pkgs := "./internal/lab ./internal/e2e"
# packages that start goroutines (or whose tests drive code that does, as
# the reporters emitting from many hosts): under the race detector, which
# needs cgo and gcc
race_pkgs := "./internal/fanout ./internal/report ./internal/runner ./internal/transport ./internal/status ./internal/webhook ./internal/step ./internal/sshtest ./internal/cli"

# build the troupe binary into bin/
build:
    go build -trimpath -ldflags "-X github.com/troupe/troupe/internal/buildinfo.Version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)" -o {{bin}} ./cmd/troupe

# release artefacts in dist/: static binaries and .debs (linux amd64, arm64), SHA256SUMS
release:
    go run ./cmd/troupe-release -out dist

# install what the tests need from Debian (openssh-server, sudo, debootstrap, …)
deps:
    scripts/install-test-deps.sh

# static checks: gofmt, go vet
check:
    test -z "$(gofmt -l $(git ls-files '*.go'))" || { gofmt -l $(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
    go vet ./...

# the whole test suite: unit, real OpenSSH, lab and end-to-end tiers
test: deps check unit fuzz
    go test -count=1 -p 1 -timeout 85m -v {{lab_pkgs}} 2>&1 | tee /tmp/troupe-lab-tests.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|\s+[a-z_]+\.go:[0-9]+:)' 

# fast tests only (no lab); race_pkgs under the race detector
unit:
    go test -count=1 -timeout 20m $(go list ./... | grep -v -e /internal/lab$ -e /internal/e2e$ $(for p in {{race_pkgs}}; do printf -- '-e %s$ ' "${p#.}"; done))
    CGO_ENABLED=1 go test -count=1 -timeout 20m -race {{race_pkgs}}

# fuzz plan loading, inventory loading and rendering, `time` each (by hand: just fuzz 10m).
# Without `time` (CI), 50000 inputs per target (5 to 25 s each here): Go 1.26's fuzz
# coordinator can fail a duration budget with "context deadline exceeded" at its end, having
# found nothing (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
fuzz time="":
    go test -run '^$' -fuzz '^FuzzLoadPlan$' -fuzztime {{ if time == "" { "50000x" } else { time } }} -fuzzminimizetime 5s ./internal/plan
    go test -run '^$' -fuzz '^FuzzLoadInventory$' -fuzztime {{ if time == "" { "50000x" } else { time } }} -fuzzminimizetime 5s ./internal/inventory
    go test -run '^$' -fuzz '^FuzzRender$' -fuzztime {{ if time == "" { "50000x" } else { time } }} -fuzzminimizetime 5s ./internal/render

# the demo: a lab site bootstrapped from bare hosts, then an agent run through the load balancer
demo suite="bookworm": deps build
    {{bin}} lab up --suite {{suite}}
    {{bin}} run bootstrap -i /var/lib/troupe-lab/inventory.yaml
    {{bin}} lab ssh agent1 puppet agent -t --detailed-exitcodes || [ $? = 2 ]
    {{bin}} lab status

# stop the lab
down: build
    {{bin}} lab down

# fan-out benchmark: troupe vs OpenSSH ControlMaster + xargs -P vs Ansible (N=50 and 200)
bench: build
    scripts/install-test-deps.sh --bench
    go run ./cmd/troupe-bench -troupe {{bin}} -n 50,200 -out docs/benchmarks.md

# docs/reference/ (plan, inventory, template functions) from the JSON Schemas and the action registry
reference:
    go run ./cmd/troupe-docs -out docs/reference

# docs/proof.md from the figures the last end-to-end run recorded (results/e2e.jsonl)
proof:
    go run ./cmd/troupe-proof -in results/e2e.jsonl -out docs/proof.md
