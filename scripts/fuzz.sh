#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/Package.swift, instrumented with -sanitize=fuzzer,address)
# and runs each for a bounded time from its seeds (Fuzz/Corpus/TARGET) and kept crashes
# (Fuzz/Regressions/TARGET), which libFuzzer replays before it mutates anything.
#   scripts/fuzz.sh [--seconds N] [TARGET...]     (default: 60 s, every target)
# Prints one line per target, "fuzz TARGET: N runs, N crashes", and fails if any target
# crashed, hung (10 s per input), ran out of memory, leaked, or did not build or start.
# New corpus entries go to .build-fuzz/corpus/TARGET, crashing inputs to
# .build-fuzz/artifacts/TARGET: copy a fixed one into Fuzz/Regressions/TARGET to keep it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /opt/swift/usr/bin ] && export PATH=/opt/swift/usr/bin:$PATH

seconds=60
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#--seconds=}; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=$(cd Fuzz/Sources && ls -d fuzz-* | sed 's/^fuzz-//')
[ ${#targets[@]} -eq 0 ] && read -r -a targets <<< "$(echo $all)"
for t in "${targets[@]}"; do
  grep -qx "$t" <<< "$all" || { echo "fuzz.sh: no target '$t' (targets: $(echo $all))" >&2; exit 2; }
done

scratch=$PWD/.build-fuzz
mkdir -p "$scratch"
if ! swift build --package-path Fuzz --scratch-path "$scratch" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library >"$scratch/build.log" 2>&1; then
  grep -E 'error' "$scratch/build.log" | head -20 >&2
  echo "fuzz.sh: building the fuzz targets failed (log: $scratch/build.log)" >&2
  exit 1
fi
bin=$(swift build --package-path Fuzz --scratch-path "$scratch" --show-bin-path)

# Longest input per target: the virtio targets carry a guest RAM image.
max_len() {
  case "$1" in
    virtqueue|rng|blk|net|vsock|balloon) echo 16384 ;;
    kernel) echo 65536 ;;
    *) echo 8192 ;;
  esac
}

# Leak checking is per target: TOMLKit (a dependency) leaks a few allocations per parse
# (TOMLTable(string:) and its key lists), which no input of ours can avoid.
detect_leaks() {
  case "$1" in
    toml) echo 0 ;;
    *) echo 1 ;;
  esac
}

# Swift's own backtracer would run inside ASan's report and confuse it: let a trap
# (overflow, precondition) reach libFuzzer as the deadly signal it is.
export SWIFT_BACKTRACE=enable=no

failed=0
for t in "${targets[@]}"; do
  work=$scratch/corpus/$t artifacts=$scratch/artifacts/$t log=$scratch/logs/$t.log
  mkdir -p "$work" "$artifacts" "$(dirname "$log")" "Fuzz/Corpus/$t" "Fuzz/Regressions/$t"
  rm -f "$artifacts"/*
  set +e
  ASAN_OPTIONS=detect_leaks=$(detect_leaks "$t") "$bin/fuzz-$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=4096 \
    -detect_leaks="$(detect_leaks "$t")" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$work" "Fuzz/Corpus/$t" "Fuzz/Regressions/$t" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$log" | tr -d '#' | sort -n | tail -1)
  crashes=$(find "$artifacts" -type f | wc -l)
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  echo "fuzz $t: ${runs:-0} runs, $crashes crashes"
  if [ "$crashes" -ne 0 ]; then
    failed=1
    grep -m1 -A25 -E '^==[0-9]+==|^Fatal error|panic|deadly signal|ERROR: libFuzzer' "$log" | sed "s/^/  $t: /" >&2 || true
    find "$artifacts" -type f | sed "s/^/  $t: input kept at /" >&2
    echo "  $t: full log: $log" >&2
  fi
done
exit "$failed"
