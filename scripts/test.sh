#!/usr/bin/env bash
# The test command: installs what the tests need, builds, and runs every test (unit tests,
# real-KVM integration tests with the probe guest, and the end-to-end Linux boots when
# ../shared/guest-kernel is present), then, on a full run (no arguments), every fuzz target
# for KATA_FUZZ_SECONDS (default 15, 0 skips) each through scripts/fuzz.sh: each target
# counts as one test, failed if it crashed; and scripts/release-smoke.sh boots the probe on
# the static release build (one test). Ends with a "N passed, N failed, N skipped" line.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /opt/swift/usr/bin ] && export PATH=/opt/swift/usr/bin:$PATH
scripts/install-deps.sh
kernels=${KATA_TEST_KERNELS:-$PWD/.build/test-kernels}
if bzimage=$(scripts/fetch-debian-kernel.sh "$kernels" 2>/dev/null); then
  export KATA_TEST_DEBIAN_BZIMAGE=$bzimage
else
  echo "test.sh: could not fetch Debian's cloud kernel; its parsing test will say so" >&2
fi
swift build --build-tests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
swift test --skip-build --disable-xctest "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
fuzz_seconds=${KATA_FUZZ_SECONDS:-15}
if [ $# -eq 0 ] && [ "$fuzz_seconds" != 0 ]; then
  scripts/fuzz.sh --seconds "$fuzz_seconds" 2>&1 | tee -a "$log"
  fuzz_status=${PIPESTATUS[0]}
  [ "$fuzz_status" -eq 0 ] || status=$fuzz_status
fi
# The shipped build (static, release) is smoke-tested too: one test.
if [ $# -eq 0 ]; then
  scripts/release-smoke.sh 2>&1 | tee -a "$log"
  smoke_status=${PIPESTATUS[0]}
  [ "$smoke_status" -eq 0 ] || status=1
fi
set -e
# One line per test ends it ("passed/failed after N seconds"); an issue recorded on the way
# has a line of its own, which is not a test.
passed=$(grep -v -e '^✔ Test run ' -e ' recorded an issue ' "$log" | grep -cE '^✔ Test .* passed after [0-9.]+ seconds' || true)
failed=$(grep -v -e '^✘ Test run ' -e ' recorded an issue ' "$log" | grep -cE '^✘ Test .* failed after [0-9.]+ seconds' || true)
fuzz_clean=$(grep -c '^fuzz .*: [0-9]* runs, 0 crashes$' "$log" || true)
fuzz_crashed=$(grep -E '^fuzz .*: [0-9]* runs, [0-9]+ crashes$' "$log" | grep -vc ', 0 crashes$' || true)
smoke_ok=$(grep -c '^release smoke: ok$' "$log" || true)
smoke_failed=$(grep -c '^release smoke: FAILED' "$log" || true)
passed=$((passed + fuzz_clean + smoke_ok))
failed=$((failed + fuzz_crashed + smoke_failed))
if [ "${smoke_status:-0}" -ne 0 ] && [ "$smoke_failed" -eq 0 ]; then failed=$((failed + 1)); fi
# A fuzz build failure names no target: count it as one failure.
if [ "${fuzz_status:-0}" -ne 0 ] && [ "$fuzz_crashed" -eq 0 ]; then failed=$((failed + 1)); fi
# A test whose fixture is missing outside CI is cancelled (Fixtures.missing): a skip, not a pass.
skipped=$(grep -c '^➜ Test .* was cancelled' "$log" || true)
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
