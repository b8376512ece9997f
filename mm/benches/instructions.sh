#!/usr/bin/env bash
# Instructions per alloc+free pair on the magazine fast path, counted by callgrind.
# Runs examples/fastpath with K and 2K pairs; (I(2K) - I(K)) / K cancels setup and teardown.
# Usage: mm/benches/instructions.sh [K] [extra cargo args, e.g. --features checked]
set -euo pipefail
cd "$(dirname "$0")/../.."
pairs=${1:-100000}
shift || true
cargo build -q --release -p mm --example fastpath "$@"
bin="${CARGO_TARGET_DIR:-target}/release/examples/fastpath"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() {
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1" "$bin" "$1" >/dev/null 2>&1
    awk '/^summary:/ { print $2 }' "$out/cg.$1"
}
once=$(count "$pairs")
twice=$(count $((2 * pairs)))
per_pair=$(( (twice - once) / pairs ))
echo "instructions: $once for $pairs pairs, $twice for $((2 * pairs)) pairs"
echo "instructions per alloc+free pair: $per_pair"
