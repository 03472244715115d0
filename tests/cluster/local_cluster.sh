#!/usr/bin/env bash
# local_cluster.sh - the README's way to try a cluster, checked with redis-cli:
# scripts/local-cluster.sh start 3 in a temp dir, then
#   - a SET on one node is read back with GET on every node;
#   - INFO replication has the shape Redis tools read: exactly one role:master with
#     connected_slaves:2, the others role:slave naming the master's port;
#   - CFG.HEALTH answers +OK on every node, CFG.CLUSTER NODES lists 3 members;
#   - the client port refuses the internal RAFT.* commands;
#   - stop-node on the leader (SIGTERM: it hands over first): the others still serve
#     writes and reads; start-node brings it back with its data.
#
# Run from the repo root: bash tests/cluster/local_cluster.sh. The binary is $RAFTCONF_BIN
# (default build/raftconf-server). Ports: a random base whose block (and +10000) is free,
# 127.0.0.1 only; every node is stopped by its PID (local-cluster.sh stop, then the pid
# files, in the EXIT trap). Prints "local_cluster: N passed, N failed".
set -uo pipefail

BIN=${RAFTCONF_BIN:-build/raftconf-server}
root=$(mktemp -d /tmp/rc-lcl-XXXXXX)
export CLUSTER_DIR=$root/c RAFTCONF_BIN=$BIN
export BASE_PORT=$((20000 + ${SRANDOM:-$((RANDOM * 32768 + RANDOM))} % 30000))
passed=0
failed=0
lc() { timeout 60 bash scripts/local-cluster.sh "$@"; }

cleanup() {
  lc stop >/dev/null 2>&1
  local f p
  for f in "$CLUSTER_DIR"/node*/pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f")
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null &&
      tr '\0' ' ' <"/proc/$p/cmdline" | grep -q raftconf-server; then kill -KILL "$p"; fi
  done
  [ -n "${KEEP:-}" ] || rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; shift; printf '  %s\n' "$@"; }
port() { cat "$CLUSTER_DIR/node$1/port"; }
cli() { local k=$1; shift; timeout 20 redis-cli -h 127.0.0.1 -p "$(port "$k")" "$@" 2>&1; }
check() { # name expected got
  if [ "$3" == "$2" ]; then ok; else
    bad "$1" "expected: $(printf '%q' "$2")" "got:      $(printf '%q' "${3:0:300}")"; fi
}
field() { # k section field
  cli "$1" INFO "$2" | tr -d '\r' | sed -n "s/^$3://p"
}
leader() { # index of the one node reporting role:master, waiting up to 10 s (right after a
  # start or a failover a deposed leader may report master until it hears the new term)
  local k found n
  for _ in $(seq 100); do
    found="" n=0
    for k in "$@"; do
      [ "$(field "$k" replication role)" = master ] && { found=$k; n=$((n + 1)); }
    done
    [ "$n" -eq 1 ] && { echo "$found"; return 0; }
    sleep 0.1
  done
  return 1
}

if ! command -v redis-cli >/dev/null; then echo "redis-cli not installed"; exit 1; fi
if ! lc start 3 >"$root/start.log" 2>&1; then
  cat "$root/start.log"
  echo "local_cluster: 0 passed, 1 failed (scripts/local-cluster.sh start 3)"
  exit 1
fi

l=$(leader 1 2 3) || { bad "leader" "no node reports role:master"; l=1; }
check "SET on node 2" "OK" "$(cli 2 SET greeting hello)"
for k in 1 2 3; do check "GET on node $k" "hello" "$(cli "$k" GET greeting)"; done

masters=0
for k in 1 2 3; do
  role=$(field "$k" replication role)
  if [ "$role" = master ]; then
    masters=$((masters + 1))
    check "connected_slaves on the master (node $k)" "2" \
      "$(field "$k" replication connected_slaves)"
  else
    check "role of node $k" "slave" "$role"
    check "master_port on node $k" "$(port "$l")" "$(field "$k" replication master_port)"
  fi
  check "CFG.HEALTH on node $k" "OK" "$(cli "$k" CFG.HEALTH)"
  check "CFG.CLUSTER NODES on node $k" "3" "$(cli "$k" CFG.CLUSTER NODES | grep -c .)"
done
check "number of masters" "1" "$masters"

got=$(cli 1 RAFT.MSG abc)
if [[ "$got" == *"unknown command"* ]]; then ok; else
  bad "RAFT.MSG on a client port" "expected an unknown-command error" "got: $got"; fi

# stop the leader (graceful), the rest carry on, then bring it back
lc stop-node "$l" >/dev/null 2>&1
rest=()
for k in 1 2 3; do [ "$k" = "$l" ] || rest+=("$k"); done
check "SET after stopping leader node $l" "OK" "$(cli "${rest[0]}" SET after-stop yes)"
check "GET on node ${rest[1]}" "yes" "$(cli "${rest[1]}" GET after-stop)"
lc start-node "$l" >/dev/null 2>&1
got=""
for _ in $(seq 100); do
  got=$(cli "$l" GET after-stop)
  [ "$got" = yes ] && break
  sleep 0.1
done
check "restarted node $l catches up" "yes" "$got"
check "old data on node $l" "hello" "$(cli "$l" GET greeting)"

echo "local_cluster: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
