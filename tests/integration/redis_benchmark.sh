#!/usr/bin/env bash
# redis_benchmark.sh - redis-benchmark runs against a real raftconf-server without errors:
#   redis-benchmark -t set,get -n 20000 -q          (issue 2 "tests that must pass")
#   redis-benchmark -t set,get -n 20000 -q -P 16    (pipelined)
# Fails on any error line, on a missing SET or GET result, or on a non-zero exit. Checks
# afterwards that the benchmark's keys are readable and the server still answers.
# Run from the repo root; the binary is $RAFTCONF_BIN (default build/raftconf-server).
set -uo pipefail

BIN=${RAFTCONF_BIN:-build/raftconf-server}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/server.sh
. "$here/lib/server.sh"
root=$(mktemp -d /tmp/rc-bench-XXXXXX)
trap 'srv_stop_all; rm -rf "$root"' EXIT
trap 'exit 130' INT TERM
passed=0
failed=0

command -v redis-benchmark >/dev/null || { echo "redis-benchmark not installed"; exit 1; }
summary_fail() { echo "redis_benchmark: 0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || { echo "no server binary at $BIN"; summary_fail; }
mkdir -p "$root/data"
srv_start "$root/server.log" "$BIN" --dir "$root/data" || summary_fail
port=$SRV_PORT

run() { # name args...
  local name=$1 out rc
  shift
  out=$(timeout 300 redis-benchmark -h 127.0.0.1 -p "$port" "$@" 2>&1); rc=$?
  # -q prints "\r"-overwritten progress lines, then "SET: 12345.67 requests per second..."
  out=$(tr '\r' '\n' <<<"$out")
  local errs set get
  errs=$(grep -iE 'error|err |refused|reset|timeout|unexpected|protocol' <<<"$out" | head -5)
  set=$(grep -E '^SET: [0-9.]+ requests per second' <<<"$out" | tail -1)
  get=$(grep -E '^GET: [0-9.]+ requests per second' <<<"$out" | tail -1)
  if [ $rc -eq 0 ] && [ -z "$errs" ] && [ -n "$set" ] && [ -n "$get" ]; then
    passed=$((passed + 1)); echo "ok   $name"; echo "     $set"; echo "     $get"
  else
    failed=$((failed + 1))
    echo "FAIL $name (redis-benchmark $*): rc=$rc"
    [ -n "$errs" ] && echo "  error lines: $errs"
    [ -z "$set" ] && echo "  no SET result"
    [ -z "$get" ] && echo "  no GET result"
    echo "  output tail:"; tail -5 <<<"$out" | sed 's/^/    /'
  fi
}

run "set,get -n 20000 -q" -t set,get -n 20000 -q
run "set,get -n 20000 -q -P 16" -t set,get -n 20000 -q -P 16

# the benchmark's writes are there and the server still answers
got=$(timeout 10 redis-cli -h 127.0.0.1 -p "$port" STRLEN key:__rand_int__)
if [ "$got" = "3" ]; then passed=$((passed + 1)); echo "ok   STRLEN key:__rand_int__ = 3"; else
  failed=$((failed + 1))
  echo "FAIL STRLEN key:__rand_int__: expected 3 (-d default), got '$got'"
fi
got=$(timeout 10 redis-cli -h 127.0.0.1 -p "$port" PING)
if [ "$got" = "PONG" ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL PING after benchmark: '$got'"; fi

echo "redis_benchmark: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
