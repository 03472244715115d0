#!/usr/bin/env bash
# bench/cluster-compare.sh - a 3-node raftconf cluster next to a single node, same run.
#
#   bench/cluster-compare.sh [N] [ROUNDS]      (defaults 50000 requests, 3 rounds)
#
# Systems, all on 127.0.0.1 with fresh temp dirs, stopped by PID:
#   single    one raftconf node (every write fsync'd before its reply)
#   leader    the leader of a 3-node cluster (scripts/local-cluster.sh): a write is
#             acknowledged once a quorum has it fsync'd and the leader applied it
#   follower  a follower of the same cluster: writes forwarded to the leader and answered
#             once applied locally; GETs are linearizable (ReadIndex through the leader)
# Workload: redis-benchmark -t set,get -n N -r 100000 -d 64 -c 50 -P {1,16} --csv, rounds
# interleaved. Prints the median ops/s, p50 and p99 of each, and the ratios to the single
# node. All processes (3 nodes + 1 + the client) share this machine's cores.
set -uo pipefail

N=${1:-50000}
ROUNDS=${2:-3}
BIN=${RAFTCONF_BIN:-build/raftconf-server}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../tests/integration/lib/server.sh
. "$here/../tests/integration/lib/server.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
root=$(mktemp -d /tmp/rc-cluster-bench-XXXXXX)
export CLUSTER_DIR="$root/cluster" RAFTCONF_BIN="$BIN"
cleanup() {
  "$here/../scripts/local-cluster.sh" stop >/dev/null 2>&1
  srv_stop_all
  rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$root/single"
srv_start "$root/single.log" "$BIN" --dir "$root/single" || exit 1
single=$SRV_PORT
BASE_PORT=$(srv_pick_port) "$here/../scripts/local-cluster.sh" start 3 >&2 || exit 1
leader="" follower=""
for _ in $(seq 100); do
  for d in "$CLUSTER_DIR"/node*; do
    p=$(cat "$d/port")
    role=$(timeout 2 redis-cli -p "$p" INFO raft 2>/dev/null | tr -d '\r' |
      awk -F: '$1=="role"{print $2}')
    if [ "$role" = leader ]; then leader=$p; elif [ -z "$follower" ]; then follower=$p; fi
  done
  [ -n "$leader" ] && [ -n "$follower" ] && break
  leader="" follower=""; sleep 0.1
done
[ -n "$leader" ] || { echo "no leader in the cluster" >&2; exit 1; }
echo "# single :$single, cluster leader :$leader, follower :$follower; N=$N rounds=$ROUNDS;" \
  "$(nproc) CPUs" >&2

names=(single leader follower)
ports=("$single" "$leader" "$follower")
raw="$root/raw.csv"
: >"$raw"
errors=0
for round in $(seq 1 "$ROUNDS"); do
  for P in 1 16; do
    for i in 0 1 2; do
      bench_once "$raw" "${names[$i]}" raftconf "${ports[$i]}" "$P" "$round" "$N" ||
        errors=$((errors + 1))
    done
  done
done

printf '\n%-9s %-4s %-8s %14s %9s %9s %9s\n' system op pipeline "ops/s(median)" "p50 ms" \
  "p99 ms" "vs single"
for P in 1 16; do
  for op in SET GET; do
    base=$(bench_cell "$raw" single raftconf "$op" "$P" 6)
    for i in 0 1 2; do
      rps=$(bench_cell "$raw" "${names[$i]}" raftconf "$op" "$P" 6)
      p50=$(bench_cell "$raw" "${names[$i]}" raftconf "$op" "$P" 7)
      p99=$(bench_cell "$raw" "${names[$i]}" raftconf "$op" "$P" 8)
      ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b;
        else print "n/a" }')
      printf '%-9s %-4s %-8s %14s %9s %9s %9s\n' "${names[$i]}" "$op" "$P" "$rps" "$p50" \
        "$p99" "$ratio"
    done
  done
done
echo "raw rows (system,config,op,pipeline,round,ops/s,p50,p99):"
sed 's/^/  /' "$raw"
[ "$errors" -eq 0 ]
