#!/usr/bin/env bash
# Instructions per alloc+free pair on the magazine fast path, counted by callgrind.
# Runs benches/instructions.rs, which runs itself under valgrind with K and 2K pairs;
# (I(2K) - I(K)) / K cancels setup and teardown.
# Usage: mm/benches/instructions.sh [K] [extra cargo args, e.g. --features checked]
set -euo pipefail
cd "$(dirname "$0")/../.."
pairs=${1:-100000}
shift || true
cargo bench -q -p mm --bench instructions "$@" -- "$pairs"
