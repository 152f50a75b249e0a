# troupe's recipes. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

bin := "bin/troupe"
# packages that need a lab (namespaces, root): run one at a time, they share the bridge
lab_pkgs := "./internal/lab ./internal/e2e"

# build the troupe binary into bin/
build:
    go build -trimpath -ldflags "-X github.com/troupe/troupe/internal/cli.Version=$(git describe --always --dirty 2>/dev/null || echo dev)" -o {{bin}} ./cmd/troupe

# install what the tests need from Debian (openssh-server, sudo, debootstrap, …)
deps:
    scripts/install-test-deps.sh

# static checks: gofmt, go vet
check:
    test -z "$(gofmt -l $(git ls-files '*.go'))" || { gofmt -l $(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
    go vet ./...

# the whole test suite: unit, real OpenSSH, lab and end-to-end tiers
test: deps check
    go test -count=1 -timeout 20m $(go list ./... | grep -v -e /internal/lab -e /internal/e2e)
    go test -count=1 -p 1 -timeout 85m -v {{lab_pkgs}} 2>&1 | tee /tmp/troupe-lab-tests.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|\s+[a-z_]+\.go:[0-9]+:)' 

# fast tests only (no lab)
unit:
    go test -count=1 $(go list ./... | grep -v -e /internal/lab -e /internal/e2e)

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
