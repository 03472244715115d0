#!/usr/bin/env bash
# bench/profile.sh - CPU profile of a raftconf leader under the SET load, hottest functions.
#
#   bench/profile.sh [--single] [--pipeline P] [--seconds S] [--callgraph] [--out DIR]
#   make bench-profile
#
# Starts a 3-node cluster on 127.0.0.1 (free ports, fresh temp dirs; --single: one node),
# runs redis-benchmark -t set -r 100000 -d 64 -c 50 -P P (default 16) against the leader,
# and records the leader for S seconds (default 10) with `perf record` (software cpu-clock
# event when the machine has no hardware counters; --callgraph adds DWARF call stacks).
# When perf cannot record here, the node runs under valgrind --tool=callgrind instead
# (single node, far slower). Prints the top 40 functions by self time; perf.data /
# callgrind.out and report.txt stay in DIR (default bench/results/profile). The binary is
# $RAFTCONF_BIN (default: built with make -j2 into bin/). Servers are stopped by PID.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
SINGLE=0 P=16 SECS=10 CALLGRAPH=0 OUTDIR="$here/results/profile"
while [ $# -gt 0 ]; do
  case "$1" in
    --single) SINGLE=1 ;;
    --pipeline) P=$2; shift ;;
    --seconds) SECS=$2; shift ;;
    --callgraph) CALLGRAPH=1 ;;
    --out) OUTDIR=$2; shift ;;
    *) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
  shift
done
for t in redis-benchmark redis-cli; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install redis-tools)" >&2; exit 1; }
done
if [ -z "${RAFTCONF_BIN:-}" ]; then
  make -C "$repo" -j2 bin/raftconf-server >&2 || exit 1
  RAFTCONF_BIN="$repo/bin/raftconf-server"
fi
BIN=$RAFTCONF_BIN
# shellcheck source=../tests/integration/lib/server.sh
. "$repo/tests/integration/lib/server.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
root=$(mktemp -d /tmp/raftconf-profile-XXXXXX)
trap 'bl_stop_all; rm -rf "$root"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$OUTDIR"

TOOL=perf EVENT=""
if ! command -v perf >/dev/null || ! perf record -o "$root/probe.data" -e cpu-clock -- true \
  >/dev/null 2>&1; then
  TOOL=callgrind SINGLE=1
  command -v valgrind >/dev/null || { echo "neither perf nor valgrind works here" >&2; exit 1; }
elif perf stat -e instructions true 2>&1 | grep -q 'not supported'; then
  EVENT="-e cpu-clock"   # a VM without hardware counters: sample on the software clock
fi

start_node() { # K PORT SPEC SECRET [WRAPPER...]
  local k=$1 port=$2 spec=$3 secret=$4; shift 4
  mkdir -p "$root/n$k"
  if [ -n "$spec" ]; then
    bl_spawn "$root/n$k.log" "$@" "$BIN" --node-id "$k" --port "$port" --bind 127.0.0.1 \
      --dir "$root/n$k" --cluster-secret "$secret" --initial-cluster "$spec"
  else
    bl_spawn "$root/n$k.log" "$@" "$BIN" --port "$port" --bind 127.0.0.1 --dir "$root/n$k"
  fi
}

ports=() pids=()
if [ "$SINGLE" = 1 ]; then
  bl_port; ports=("$BL_PORT")
  if [ "$TOOL" = callgrind ]; then
    start_node 1 "$BL_PORT" "" "" valgrind --tool=callgrind \
      --callgrind-out-file="$OUTDIR/callgrind.out" --collect-atstart=no
  else
    start_node 1 "$BL_PORT" "" ""
  fi
  pids=("$BL_PID")
else
  secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n') spec=""
  for k in 1 2 3; do bl_port; ports+=("$BL_PORT"); spec="$spec${spec:+,}$k=127.0.0.1:$BL_PORT"; done
  for k in 1 2 3; do
    start_node "$k" "${ports[$((k - 1))]}" "$spec" "$secret"
    pids+=("$BL_PID")
  done
fi
for p in "${ports[@]}"; do
  bl_wait_read "$p" 120 || { echo "node :$p not serving" >&2; exit 1; }
done
lead=$(bl_leader "${ports[@]}") || { echo "no leader" >&2; exit 1; }
for i in "${!ports[@]}"; do [ "${ports[$i]}" = "$lead" ] && lpid=${pids[$i]}; done
echo "# profiling the leader :$lead (pid $lpid) with $TOOL under SET -P $P for $SECS s" >&2

# The load runs longer than the recording; it is stopped by PID afterwards.
n=100000000; [ "$TOOL" = callgrind ] && n=20000
redis-benchmark -h 127.0.0.1 -p "$lead" -t set -n "$n" -r 100000 -d 64 -c 50 -P "$P" -q \
  >"$root/bench.out" 2>&1 &
bpid=$!
sleep 1
if [ "$TOOL" = perf ]; then
  cg=""; [ "$CALLGRAPH" = 1 ] && cg="--call-graph dwarf"
  # shellcheck disable=SC2086
  perf record $EVENT $cg -F 999 -p "$lpid" -o "$OUTDIR/perf.data" -- sleep "$SECS" \
    >"$root/perf.out" 2>&1 || { cat "$root/perf.out" >&2; exit 1; }
  kill -TERM "$bpid" 2>/dev/null; wait "$bpid" 2>/dev/null
  {
    echo "== self time by library (top 10)"
    perf report -i "$OUTDIR/perf.data" --no-children --sort dso --stdio 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -10
    echo "== self time by function (top 40; unresolved addresses: a library without symbols)"
    perf report -i "$OUTDIR/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -40
  } | sed 's/[ -]*$//' | tee "$OUTDIR/report.txt"
else
  callgrind_control -i on "$lpid" >/dev/null 2>&1
  sleep "$SECS"
  callgrind_control -i off "$lpid" >/dev/null 2>&1
  kill -TERM "$bpid" 2>/dev/null; wait "$bpid" 2>/dev/null
  bl_stop_all
  callgrind_annotate "$OUTDIR/callgrind.out"* 2>/dev/null | head -60 | tee "$OUTDIR/report.txt"
fi
echo "# profile data in $OUTDIR" >&2
