#!/usr/bin/env bash
# test_redis_py.sh - redis-py (Debian python3-redis, run with /usr/bin/python3) against
# raftconf-server: redis-tests/python/redis_py_check.py on a single node (get/set/mget,
# scan_iter, pipelines with and without a transaction, transaction() with WATCH retries,
# Pub/Sub with health_check_interval, CFG.SET/GET/WATCH, reconnect after a restart) and on
# a 3-node cluster.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

py=/usr/bin/python3
$py -c 'import redis' 2>/dev/null || { bad import "python3-redis is not installed"; \
  rt_summary redis_py; exit 1; }
rt_start single || { bad start "server did not start"; rt_summary redis_py; exit 1; }
rt_cluster c 3 || bad cluster "cluster did not start"
out="$RT_ROOT/redis_py.out"
if timeout 120 $py "$here/python/redis_py_check.py" "$RT_PORT" "$RT_ROOT/single" \
    "${RT_PORTS// /,}" >"$out" 2>&1; then ok; else bad redis-py "$(grep -v '^ok ' "$out")"; fi
echo "redis-py: $(grep -c '^ok ' "$out") checks passed"
rt_summary redis_py
