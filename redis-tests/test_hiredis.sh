#!/usr/bin/env bash
# test_hiredis.sh - hiredis (C, Debian libhiredis-dev) against raftconf-server: compiles
# redis-tests/hiredis/hiredis_check.c with `cc ... -lhiredis` into a temp dir and runs it
# against a single node (pipelines, MULTI/EXEC, WATCH, SUBSCRIBE, CFG.SET/GET/WATCH).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

if ! cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 -o "$RT_ROOT/hiredis_check" \
    "$here/hiredis/hiredis_check.c" -lhiredis 2>"$RT_ROOT/cc.log"; then
  bad compile "$(cat "$RT_ROOT/cc.log")"; rt_summary hiredis; exit 1
fi
rt_start single || { bad start "server did not start"; rt_summary hiredis; exit 1; }
out="$RT_ROOT/hiredis.out"
if timeout 60 "$RT_ROOT/hiredis_check" "$RT_PORT" >"$out" 2>&1; then ok; else
  bad hiredis "$(grep -v '^ok ' "$out")"; fi
ver=$(pkg-config --modversion hiredis 2>/dev/null)
echo "hiredis $ver: $(grep -c '^ok ' "$out") checks passed"
rt_summary hiredis
