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
