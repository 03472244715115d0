#!/usr/bin/env bash
# test_node_redis.sh - node-redis (the `redis` package) 4, 5 and 6 (pinned in
# package.json) against raftconf-server: redis-tests/node/clients.js with each (5 twice:
# RESP2 and RESP: 3), on a single node (connect - node-redis 6 and RESP: 3 open with
# HELLO 3 -, get/set/mget, pipeline, MULTI/EXEC, SUBSCRIBE/PSUBSCRIBE,
# CFG.SET/GET/WATCH via sendCommand(), reconnect after a restart) and on a 3-node cluster.
# Installs the clients with `npm ci` into redis-tests/node_modules when needed.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

rt_npm_ready || { bad npm-ci "npm ci failed"; rt_summary node_redis; exit 1; }
rt_start single || { bad start "server did not start"; rt_summary node_redis; exit 1; }
rt_cluster c 3 || { bad cluster "cluster did not start"; }
for client in redis4 redis5 redis5-resp3 redis6; do
  if timeout 120 node "$here/node/clients.js" "$client" "$RT_PORT" "$RT_ROOT/single" \
      "${RT_PORTS// /,}" >"$RT_ROOT/$client.out" 2>&1; then
    ok
  else
    bad "$client" "$(grep -v '^ok ' "$RT_ROOT/$client.out")"
  fi
  echo "$client: $(grep -c '^ok ' "$RT_ROOT/$client.out") checks passed"
done
rt_summary node_redis
