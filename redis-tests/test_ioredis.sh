#!/usr/bin/env bash
# test_ioredis.sh - ioredis 5 and 6 (pinned in package.json) against raftconf-server:
# redis-tests/node/clients.js with each, on a single node (connect - ioredis 6 opens with
# HELLO 3 -, INFO ready check, get/set/mget, pipeline, MULTI/EXEC, SUBSCRIBE/PSUBSCRIBE,
# CFG.SET/GET/WATCH via call(), reconnect after a restart) and on a 3-node cluster.
# Installs the clients with `npm ci` into redis-tests/node_modules when needed.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

rt_npm_ready || { bad npm-ci "npm ci failed"; rt_summary ioredis; exit 1; }
rt_start single || { bad start "server did not start"; rt_summary ioredis; exit 1; }
rt_cluster c 3 || { bad cluster "cluster did not start"; }
for client in ioredis5 ioredis6; do
  if timeout 120 node "$here/node/clients.js" "$client" "$RT_PORT" "$RT_ROOT/single" \
      "${RT_PORTS// /,}" >"$RT_ROOT/$client.out" 2>&1; then
    ok
  else
    bad "$client" "$(grep -v '^ok ' "$RT_ROOT/$client.out")"
  fi
  echo "$client: $(grep -c '^ok ' "$RT_ROOT/$client.out") checks passed"
done
rt_summary ioredis
