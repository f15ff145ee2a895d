#!/usr/bin/env bash
# The test command: installs what is missing, then runs every check and the
# whole test suite (unit, fuzz seed corpora, and integration tests that boot
# real Linux guests under QEMU). Run as root on Debian 12.
set -euo pipefail
BULWARK_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$BULWARK_ROOT"
. scripts/deps.sh
bulwark_deps
bulwark_test_deps

echo "== gofmt"
bad=$(gofmt -l cmd internal)
if [ -n "$bad" ]; then echo "gofmt needed:"; echo "$bad"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
echo "== web console assets rebuild from package-lock.json"
web/console/build.sh --check
echo "== go test"
# -p 1: integration tests boot guests and the machine has two cores.
go test -count=1 -p 1 -timeout 40m ./...
echo "== every Go benchmark once (the figures in docs/benchmarks.md come from this code)"
go test -count=1 -run '^$' -bench . -benchtime 1x $(go list ./... | grep -v /internal/itest)
echo "== every bench/ program once, tiny (their full runs are in docs/benchmarks.md)"
go run ./bench/boot -n 1 -warmup 0 -rss-vms 1 -rss-running 0 >/dev/null
go run ./bench/console -n 50 -warmup 5 -blocks 2 -consoles 4 -stalled 1 -timeout 60s >/dev/null
go run ./bench/switch -duration 300ms -rules 10 >/dev/null
go run ./bench/vmi -procs 20 -phase 2s -rounds 1 -ps 5 -checks 2 -cold 1 -memory 256 >/dev/null
go run ./bench/jail -n 1 -warmup 0 -settle 200ms >/dev/null
go run ./bench/disk -n 1 -size 8 >/dev/null
go run ./bench/pools -phase 2s -warmup 1s >/dev/null
echo "test.sh: all checks passed"
