#!/usr/bin/env bash
#
# benchmarks/run_benchmarks.sh
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# `./run bench [--quick]`: configures and builds the benchmarks in a release build directory, then runs every
# measurement for every contender and writes benchmarks/results/latest.{json,md,png}.
#
# Usage: benchmarks/run_benchmarks.sh [--quick] [--update-readme]
# Environment: PEERGRAPH_BENCH_BUILD_DIR (default: build-bench in the source tree), PYTHON (default: python3).
#
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build="${PEERGRAPH_BENCH_BUILD_DIR:-$root/build-bench}"
python="${PYTHON:-python3}"

# Build output goes to stderr: stdout carries the results table only.
options=(-Dbenchmarks=true -Dtests=false -Dexamples=false --buildtype=release -Db_ndebug=true)
if [ -f "$build/build.ninja" ]; then
  meson configure "$build" "${options[@]}" >&2
else
  meson setup "$build" "$root" "${options[@]}" >&2
fi
# Two jobs at most: the benchmarks are meant for small machines too.
meson compile -C "$build" -j 2 peergraph_bench peergraph_bench_allocs >&2

exec "$python" "$here/run_benchmarks.py" --build-dir "$build" "$@"
