# cedana's tasks. `just --list` shows them; `just demo` and `just test` are the README's quick start.

set shell := ["bash", "-euo", "pipefail", "-c"]

version := `git describe --tags --always --dirty 2>/dev/null || echo dev`
commit := `git rev-parse HEAD 2>/dev/null || true`
ldflags := "-s -w -X github.com/cedana/cedana/version.Version=" + version + " -X github.com/cedana/cedana/version.Commit=" + commit
buf := "go run github.com/bufbuild/buf/cmd/buf@v1.75.0"
helm := "go run helm.sh/helm/v3/cmd/helm@v3.22.0"
golangci_lint := "go run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0"
# Build tag sets CI builds and vets: every runtime (by default and by the `runtimes` tag), none, and
# each runtime alone.
tag_sets := "default custom,runtimes custom custom,runtimes.process custom,runtimes.runc custom,runtimes.containerd"

# List the tasks.
default:
    @just --list

# Install what cedana needs at run time and in tests (CRIU >= 4.1, iptables, iproute2, ...). Idempotent.
deps:
    hack/install-deps.sh

# Build bin/cedana: static (CGO_ENABLED=0), version-stamped. TAGS picks runtimes, e.g. TAGS=custom,runtimes.process.
build TAGS="":
    CGO_ENABLED=0 go build -trimpath -tags '{{TAGS}}' -ldflags '{{ldflags}}' -o bin/cedana .
    @file bin/cedana | grep -q 'statically linked' || { echo "bin/cedana is not statically linked" >&2; exit 1; }

# Build bin/cedana-image.tar, cedana's container image as an OCI image layout tarball (no Docker, no
# registry): the static binary, CRIU, runc and iptables. `ctr image import bin/cedana-image.tar` names it REF.
image REF=("docker.io/cedana/cedana:" + version): deps build
    go run ./hack/image -binary bin/cedana -o bin/cedana-image.tar -ref '{{REF}}' -version '{{version}}' \
      -revision '{{commit}}' -created "$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)"

# Start a daemon, checkpoint a live counting process, restore it, and show it counting on.
demo: deps build
    hack/demo.sh bin/cedana

# Run every test: unit tests and end-to-end tests with the real CRIU and daemon (as root).
test: deps build
    go test -count=1 -p 1 -timeout 30m ./...

# Lint the Helm chart (helm pinned, through go run) with its defaults and other values, and check
# that deploy/kubernetes is what `helm template` renders (`go test ./deploy -update` rewrites it).
chart:
    #!/usr/bin/env bash
    set -euo pipefail
    {{helm}} lint --strict charts/cedana
    {{helm}} lint --strict charts/cedana --set namespace.create=true,s3.existingSecret=s3,metrics.enabled=false,setup.enabled=false
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    {{helm}} template cedana charts/cedana --namespace cedana --set namespace.create=true --output-dir "$dir" >/dev/null
    for f in "$dir"/cedana/templates/*.yaml; do
      # helm writes "---" and "# Source: ..." first, the manifests a "Generated ..." line.
      diff <(tail -n +3 "$f") <(tail -n +2 "deploy/kubernetes/$(basename "$f")") \
        || { echo "deploy/kubernetes/$(basename "$f") differs from helm template: run go test ./deploy -update" >&2; exit 1; }
    done
    [ "$(ls "$dir"/cedana/templates | wc -l)" = "$(ls deploy/kubernetes/*.yaml | wc -l)" ] \
      || { echo "deploy/kubernetes does not hold exactly the chart's templates: run go test ./deploy -update" >&2; exit 1; }
    go test -count=1 ./deploy

# Fuzz each fuzz target for TIME (e.g. 1m); a failing input lands in the package's testdata/fuzz/<target>/.
fuzz TIME="10s":
    #!/usr/bin/env bash
    set -euo pipefail
    # Go fuzzes one target per run. Each package's test binary is built once, with the coverage
    # instrumentation `go test -fuzz` adds (-d=libfuzzer) for this module's packages only: it builds
    # in seconds over the test cache instead of minutes (go test -fuzz instruments every dependency,
    # SQLite included), and fuzzing, guided by cedana's own code, runs about ten times faster.
    # Inputs and corpora are where `go test -fuzz` keeps them.
    module=$(go list -m)
    bin=$(mktemp -d)
    trap 'rm -rf "$bin"' EXIT
    for dir in $(grep -rl --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*([a-z_]* \*testing\.F)' . | xargs -n1 dirname | sort -u); do
      pkg=$(go list "$dir")
      go test -c -o "$bin/fuzz.test" -gcflags="$module/...=-d=libfuzzer" "$dir"
      for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*([a-z_]* \*testing\.F)' "$dir"/*_test.go | sed 's/^func \([A-Za-z0-9_]*\).*/\1/' | sort); do
        echo "== $target ($pkg, {{TIME}})"
        if ! (cd "$dir" && "$bin/fuzz.test" -test.run '^$' -test.fuzz "^${target}\$" -test.fuzztime '{{TIME}}' \
          -test.fuzzcachedir "$(go env GOCACHE)/fuzz/$pkg") 2>&1 | tee "$bin/out"; then
          # Go 1.26's fuzz coordinator can fail a target with a bare "context deadline exceeded"
          # when -fuzztime ends while a starved worker is mid-input (golang/go#75804, fixed in Go
          # 1.27). That failure writes no input; replaying the seeds and corpus tells it apart.
          if grep -q 'Failing input written' "$bin/out" || ! grep -q '^    context deadline exceeded$' "$bin/out"; then
            exit 1
          fi
          echo "== $target: Go's fuzz stop race (golang/go#75804), no failing input: replaying the corpus"
          (cd "$dir" && "$bin/fuzz.test" -test.run "^${target}\$" -test.fuzzcachedir "$(go env GOCACHE)/fuzz/$pkg")
        fi
      done
    done

# Lint the whole tree with golangci-lint (pinned, through go run) and .golangci.yml: vet, staticcheck,
# errcheck, revive, errorlint and more, and gofumpt/goimports formatting. Any finding fails.
lint:
    {{golangci_lint}} run --allow-serial-runners ./...

# Rewrite the tree's formatting as `just lint` wants it (gofumpt, goimports with local imports last).
fmt:
    {{golangci_lint}} fmt ./...

# Regenerate gen/ from proto/ (buf and the protoc plugins pinned, run through go run).
gen:
    {{buf}} lint
    {{buf}} generate

# Fail when gen/ is not what `just gen` produces from proto/.
check-gen: gen
    @git diff --exit-code -- gen || { echo "gen/ is stale: run 'just gen' and commit it" >&2; exit 1; }
    @test -z "$(git status --porcelain -- gen)" || { git status --porcelain -- gen; echo "gen/ has uncommitted files: run 'just gen' and commit them" >&2; exit 1; }

# Build and vet every build-tag set CI checks, and check that each binary holds exactly the runtimes
# its tags ask for (`cedana features --output json`): no more, no fewer.
matrix:
    #!/usr/bin/env bash
    set -euo pipefail
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    go build -o "$dir/checkruntimes" ./hack/checkruntimes
    for tags in {{tag_sets}}; do
      [ "$tags" = default ] && tags=""
      echo "== build and vet with tags '${tags}'"
      CGO_ENABLED=0 go build -tags "$tags" -o "$dir/cedana" .
      go vet -tags "$tags" ./...
      CEDANA_CONFIG_DIR="$dir" "$dir/checkruntimes" -tags "$tags" "$dir/cedana"
    done

# Benchmark cedana against raw CRIU and issue 14's goals: one table, random and compressible memory
# of `mib` MiB per workload (`just bench 128` for a quick run), none/zstd/lz4, medians of 5 runs;
# then eager vs lazy restores (time to the restored workload's first step) of 256 MiB, 1 GiB and
# 4 GiB, and migrations of 256 MiB and 1 GiB (CEDANA_BENCH_SIZES).
bench mib=env_var_or_default("CEDANA_BENCH_MIB", "1024"): deps build
    CEDANA_BENCH_MIB={{mib}} go test ./bench -run '^$' -bench '^Benchmark(Report|LazyRestore|Migrate)$' -benchtime 1x -timeout 60m -v

# Everything CI runs.
ci: check-gen lint matrix chart test (fuzz "3s")
