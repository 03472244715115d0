#!/usr/bin/env bash
# test_redis_benchmark.sh - redis-benchmark (Debian redis-tools) against raftconf-server:
# `-t set,get,mset` with -P 1 and with -P 16, no errors. redis-benchmark first asks
# CONFIG GET save / appendonly; every reply must parse and every test print its result.
# Afterwards the server still answers and holds the benchmark's key.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

command -v redis-benchmark >/dev/null || { bad install "redis-benchmark is not installed"; \
  rt_summary redis_benchmark; exit 1; }
rt_start single || { bad start "server did not start"; rt_summary redis_benchmark; exit 1; }
port=$RT_PORT

run() { # name args...
  local name=$1 out rc errs t missing=""
  shift
  out=$(timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" "$@" 2>&1); rc=$?
  out=$(tr '\r' '\n' <<<"$out") # -q overwrites progress lines with \r
  errs=$(grep -iE 'error|err |refused|reset|timeout|unexpected|protocol' <<<"$out" | head -5)
  for t in SET GET "MSET (10 keys)"; do
    grep -E '[0-9.]+ requests per second' <<<"$out" | grep -qF "$t: " || missing+="$t; "
  done
  if [ $rc -eq 0 ] && [ -z "$errs" ] && [ -z "$missing" ]; then
    ok; grep -E 'requests per second' <<<"$out" | sed "s/^/$name: /"
  else
    bad "$name" "redis-benchmark $*: rc=$rc" "error lines: $errs" "missing results: $missing" \
      "output tail: $(tail -5 <<<"$out")"
  fi
}

run "-P 1" -t set,get,mset -n 5000 -c 20 -q
run "-P 16" -t set,get,mset -n 20000 -c 20 -P 16 -q
got=$(timeout 10 redis-cli -h 127.0.0.1 -p "$port" GET key:__rand_int__)
if [ ${#got} -eq 3 ]; then ok; else bad after "GET key:__rand_int__: expected 3 bytes, got $got"; fi
got=$(timeout 10 redis-cli -h 127.0.0.1 -p "$port" DBSIZE)
if [ "$got" -ge 1 ] 2>/dev/null; then ok; else bad dbsize "DBSIZE after: $got"; fi
rt_summary redis_benchmark
