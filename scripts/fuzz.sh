#!/usr/bin/env bash
# fuzz.sh SECONDS: run every native Go fuzz target in the module, one at a
# time, for SECONDS each, starting from the seed corpora committed under each
# package's testdata/fuzz. A failing input is written there by `go test` and
# makes this script fail after all targets ran.
#
#   scripts/fuzz.sh 10     # make fuzz-short (part of make test)
#   scripts/fuzz.sh 120    # make fuzz
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: $0 SECONDS   (fuzz time per target)" >&2
	exit 2
fi
GO="${GO:-go}"

# Packages whose tests declare a fuzz target; listing only those keeps
# go test -list from running other packages' TestMain (e2e starts Envoy).
pkgs=()
while read -r path dir; do
	if grep -Eqs '^func Fuzz[A-Za-z0-9_]*\(' "$dir"/*_test.go; then
		pkgs+=("$path")
	fi
done < <($GO list -f '{{.ImportPath}} {{.Dir}}' ./...)

start=$(date +%s)
targets=0
fuzzed=0
failed=()
for pkg in "${pkgs[@]}"; do
	names=$($GO test -list '^Fuzz' "$pkg" | grep -E '^Fuzz' || true)
	for name in $names; do
		targets=$((targets + 1))
		echo ">> fuzz $pkg $name for ${secs}s"
		t0=$(date +%s)
		if ! $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "${secs}s" "$pkg"; then
			failed+=("$pkg.$name")
		fi
		fuzzed=$((fuzzed + $(date +%s) - t0))
	done
done
wall=$(( $(date +%s) - start ))
echo "fuzz: ${targets} targets in ${#pkgs[@]} packages, ${secs}s fuzzing each ($((targets * secs))s), ${fuzzed}s in go test including builds, ${wall}s wall"
if [ "$targets" -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi
if [ "${#failed[@]}" -gt 0 ]; then
	echo "fuzz: FAILED: ${failed[*]} (failing inputs are under the package's testdata/fuzz)" >&2
	exit 1
fi
