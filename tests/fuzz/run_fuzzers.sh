#!/usr/bin/env bash
#
# tests/fuzz/run_fuzzers.sh
# ~~~~~~~~~~~~~~~~~~~~~~~~~
# Builds the libFuzzer targets with clang 19 and runs each one for a fixed time on a scratch copy of its seed corpus
# (the committed corpus never grows). Prints, per target, the number of executions and whether anything was found;
# exits non-zero when a target crashed (or the build failed), printing the crash file. tests/fuzz/README.md has the
# details and the commands for long runs.
#
# usage: tests/fuzz/run_fuzzers.sh [seconds-per-target] [target...]
#   seconds-per-target  how long each target runs (default 60)
#   target...           some of fuzz_frame_decoder fuzz_handshake fuzz_connection fuzz_record_payload
#                       fuzz_sync_message (default: all five)
# Environment: PEERGRAPH_FUZZ_BUILD_DIR (default build-fuzz), PEERGRAPH_FUZZ_CXX (default clang++-19; may start
# with a launcher, e.g. "ccache clang++-19"),
# PEERGRAPH_JOBS (parallel compile jobs, default 2).
#
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1

seconds="${1:-60}"
(($# > 0)) && shift
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "run_fuzzers.sh: seconds-per-target must be a positive whole number, not '$seconds'" >&2
  exit 2
fi
all_targets=(fuzz_frame_decoder fuzz_handshake fuzz_connection fuzz_record_payload fuzz_sync_message)
targets=("$@")
((${#targets[@]} == 0)) && targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
  if [[ " ${all_targets[*]} " != *" $target "* ]]; then
    echo "run_fuzzers.sh: unknown target '$target' (known: ${all_targets[*]})" >&2
    exit 2
  fi
done

build_dir="${PEERGRAPH_FUZZ_BUILD_DIR:-build-fuzz}"
cxx="${PEERGRAPH_FUZZ_CXX:-clang++-19}"
jobs="${PEERGRAPH_JOBS:-2}"
findings="$build_dir/fuzz-findings"

say() { printf '==> %s\n' "$*"; }

command -v "${cxx##* }" >/dev/null || { # the compiler, after a launcher such as ccache
  echo "run_fuzzers.sh: $cxx not found (Debian: apt-get install clang-19 libclang-rt-19-dev)" >&2
  exit 2
}

# Configure (or reconfigure) and build the targets only. Optimised, with line tables for the file and line of every
# frame of a report (full -g would cost half as much compile time again).
say "building the fuzz targets in $build_dir with $cxx"
options=(--wrap-mode=nodownload -Dfuzz=true -Dtests=true -Dwerror=true -Dexamples=false -Dbenchmarks=false
  -Doptimization=2 -Ddebug=false -Dcpp_args=-gline-tables-only)
if [[ -f "$build_dir/meson-private/coredata.dat" ]]; then
  meson setup --reconfigure "$build_dir" "${options[@]}" >/dev/null || exit 1
else
  CXX="$cxx" meson setup "$build_dir" "${options[@]}" >/dev/null || exit 1
fi
meson compile -C "$build_dir" -j "$jobs" "${targets[@]}" || exit 1

# Symbolised stack traces: any llvm-symbolizer will do.
if [[ -z ${ASAN_SYMBOLIZER_PATH:-} ]]; then
  for candidate in llvm-symbolizer-19 /usr/lib/llvm-19/bin/llvm-symbolizer llvm-symbolizer; do
    if path="$(command -v "$candidate")"; then
      export ASAN_SYMBOLIZER_PATH="$(readlink -f "$path")"
      break
    fi
  done
fi
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/peergraph-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# Prints the executions of a libFuzzer run: its final statistics, else the count of its last "#N" status line.
executions() {
  local log=$1 count
  count="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)"
  [[ -z $count ]] && count="$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)"
  echo "${count:-0}"
}

summary=()
failed=0
for target in "${targets[@]}"; do
  exe="$build_dir/tests/fuzz/$target"
  corpus="$scratch/$target/corpus"
  artifacts="$scratch/$target/artifacts"
  log="$scratch/$target/log"
  mkdir -p "$corpus" "$artifacts"
  cp tests/fuzz/corpus/"$target"/* "$corpus"/
  say "$target: fuzzing for $seconds s"
  "$exe" "$corpus" -max_total_time="$seconds" -timeout=60 -print_final_stats=1 \
    -dict=tests/fuzz/wire.dict -artifact_prefix="$artifacts/" >"$log" 2>&1
  status=$?
  count="$(executions "$log")"
  # What libFuzzer saved (crash-, leak-, timeout-, oom-; not slow-unit-, which only reports) is kept in the build
  # directory, which outlives this run.
  found=()
  while IFS= read -r -d '' file; do
    mkdir -p "$findings/$target"
    cp "$file" "$findings/$target/"
    found+=("$findings/$target/$(basename "$file")")
  done < <(find "$artifacts" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) -print0)
  grep -h '^fuzz_connection: .* inputs;' "$log" || true
  if ((status != 0 || ${#found[@]} > 0)); then
    failed=1
    summary+=("$(printf '%-20s %12s executions  FOUND A PROBLEM (exit %d)' "$target" "$count" "$status")")
    say "$target: the run failed; the end of its log:"
    grep -v '^#[0-9]' "$log" | tail -n 60
    for file in "${found[@]}"; do
      say "$target: input that triggered it: $file ($(stat -c %s "$file") bytes); first bytes:"
      od -A d -t x1 "$file" | head -n 16
      say "reproduce: $exe $file"
    done
  else
    summary+=("$(printf '%-20s %12s executions  nothing found' "$target" "$count")")
  fi
done

say "fuzzing summary ($seconds s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
