#!/usr/bin/env bash
# Runs every test suite of one build (BUILD=build or build-asan) and prints one closing
# line "tests: N passed, N failed". Suites:
#   $BUILD/tests/test_*    criterion unit suites
#   $BUILD/itests/test_*   criterion integration suites (start the real server)
#   tests/integration/*.sh shell tests with redis-cli / redis-benchmark
#   $BUILD/ctests/test_*   criterion cluster suites (real 3-4 node clusters, tcpproxy)
#   tests/cluster/*.sh     shell cluster tests
#   $BUILD/raftsim         the deterministic cluster simulator (seeds x steps)
# Under SAN=1 the simulator runs fewer seeds (the same code, slower), and the cluster suites
# fewer repetitions with slower timers (they read SAN from the environment).
set -uo pipefail
BUILD=${BUILD:-build}
SAN=${SAN:-0}
export SAN
case "$BUILD" in /*) abs_build=$BUILD ;; *) abs_build="$PWD/$BUILD" ;; esac
export RAFTCONF_BIN="$abs_build/raftconf-server"
export RAFTCONF_BUILD="$abs_build"
passed=0; failed=0; failed_names=()
log_dir="$BUILD/test-logs"; mkdir -p "$log_dir"

count_criterion() { # name logfile rc
  local name=$1 log=$2 rc=$3 line t p f c
  line=$(grep -a 'Synthesis: Tested:' "$log" | tail -1)
  if [ -z "$line" ]; then
    failed=$((failed + 1)); failed_names+=("$name (no synthesis, rc=$rc)"); return
  fi
  t=$(sed -E 's/.*Tested: ([0-9]+).*/\1/' <<<"$line")
  p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")
  f=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$line")
  c=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -gt 0 ] || [ "$rc" -ne 0 ] && failed_names+=("$name ($f of $t failed, $c crashed, rc=$rc)")
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
  return 0
}

run_suite() { # name cmd...
  local name=$1; shift
  local log="$log_dir/$name.log" start=$SECONDS rc
  "$@" >"$log" 2>&1; rc=$?
  echo "== $name: rc=$rc ($((SECONDS - start)) s)"
  if grep -aq 'Synthesis: Tested:' "$log"; then
    count_criterion "$name" "$log" "$rc"
    grep -a -E '\[FAIL\]|Assertion|CRASH|ERROR: AddressSanitizer|runtime error' "$log" | head -20
  else
    if [ $rc -eq 0 ]; then passed=$((passed + 1)); else
      failed=$((failed + 1)); failed_names+=("$name (rc=$rc)"); tail -50 "$log"; fi
  fi
}

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] && run_suite "unit-$(basename "$t")" "$t" --jobs 2
done
for t in "$BUILD"/itests/test_*; do
  [ -x "$t" ] && run_suite "itest-$(basename "$t")" "$t" --jobs 1
done
for t in tests/integration/*.sh; do
  [ -f "$t" ] && run_suite "sh-$(basename "$t" .sh)" bash "$t"
done
for t in "$BUILD"/ctests/test_*; do
  [ -x "$t" ] && run_suite "ctest-$(basename "$t")" "$t" --jobs 1
done
for t in tests/cluster/*.sh; do
  [ -f "$t" ] && run_suite "csh-$(basename "$t" .sh)" bash "$t"
done
# Real Redis clients (redis-tests/) and the nemesis suite (tests/fault/nemesis*.sh) run in
# the plain pass only: they test the server as users run it, and the sanitizer pass would
# double the suite's longest minutes without finding more (the same code runs under ASan in
# the suites above).
if [ "$SAN" != 1 ]; then
  for t in redis-tests/test_*.sh; do
    [ -f "$t" ] && run_suite "redis-$(basename "$t" .sh)" bash "$t"
  done
  for t in tests/fault/nemesis*.sh; do
    [ -f "$t" ] && run_suite "fault-$(basename "$t" .sh)" bash "$t"
  done
fi
if [ -x "$BUILD/raftsim" ]; then
  if [ "$SAN" = 1 ]; then seeds=${SIM_SEEDS_SAN:-1000}; else seeds=${SIM_SEEDS:-20000}; fi
  # Two halves of the seed range at once (one per core); each is one suite.
  half=$(( (seeds + 1) / 2 ))
  start=$SECONDS
  "$BUILD/raftsim" --seeds "$half" --first-seed 1 --steps "${SIM_STEPS:-2000}" \
    >"$log_dir/raftsim-a.log" 2>&1 & sim_a=$!
  "$BUILD/raftsim" --seeds "$((seeds - half))" --first-seed "$((half + 1))" \
    --steps "${SIM_STEPS:-2000}" >"$log_dir/raftsim-b.log" 2>&1
  rc_b=$?
  wait "$sim_a"; rc_a=$?
  for part in a b; do
    rc=$rc_a; [ $part = b ] && rc=$rc_b
    echo "== raftsim-$part: rc=$rc ($((SECONDS - start)) s)"
    tail -3 "$log_dir/raftsim-$part.log"
    if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else
      failed=$((failed + 1)); failed_names+=("raftsim-$part (rc=$rc)"); fi
  done
fi
if [ ${#failed_names[@]} -gt 0 ]; then
  echo "Failed suites:"; printf '  %s\n' "${failed_names[@]}"
  echo "logs: $log_dir/"
fi
echo "build $BUILD:"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failed_names[@]} -eq 0 ]
