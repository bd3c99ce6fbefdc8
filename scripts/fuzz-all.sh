#!/usr/bin/env bash
# fuzz-all.sh [TIME] — run every native fuzz target (go test -fuzz) for TIME
# each (default 30s). New interesting inputs are kept in the package's
# testdata/fuzz/FuzzXxx corpus: commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-30s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "== $pkg $f ($time)"
		go test "$pkg" -run '^$' -fuzz "^$f\$" -fuzztime "$time"
	done
done
