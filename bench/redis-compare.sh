#!/usr/bin/env bash
# bench/redis-compare.sh - raftconf vs Debian's redis-server, measured in the same run.
#
#   bench/redis-compare.sh [N] [ROUNDS]      (defaults 50000 requests, 3 rounds)
#
# Systems (each on a free port on 127.0.0.1 with a fresh temp dir, stopped by PID):
#   raftconf  single node, defaults (every write fsync'd before its reply)
#   redis     --appendonly yes --appendfsync always --save ''   (durable: the fair peer)
#   redis     --appendonly no --save ''                         (in memory: the ceiling)
# Workload: redis-benchmark -t set,get -n N -r 100000 -d 64 -c 50 -P {1,16} --csv,
# ROUNDS rounds interleaved (every system once per round, so drift hits all alike).
# Prints: system, config, op, pipeline, median ops/s, median p50 and p99 (ms, from
# redis-benchmark's --csv columns), then raftconf / durable-redis ops/s ratios.
# The binary is $RAFTCONF_BIN (default build/raftconf-server); $REDIS_SERVER overrides
# /usr/bin/redis-server. Run from the repo root.
set -uo pipefail

N=${1:-50000}
ROUNDS=${2:-3}
BIN=${RAFTCONF_BIN:-build/raftconf-server}
REDIS=${REDIS_SERVER:-/usr/bin/redis-server}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../tests/integration/lib/server.sh
. "$here/../tests/integration/lib/server.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
root=$(mktemp -d /tmp/rc-compare-XXXXXX)
trap 'srv_stop_all; rm -rf "$root"' EXIT
trap 'exit 130' INT TERM

for t in "$BIN" "$REDIS" "$(command -v redis-benchmark)"; do
  [ -x "$t" ] || { echo "missing executable: $t" >&2; exit 1; }
done

names=(raftconf redis redis)
configs=("fsync-per-write" "appendonly-always" "no-persistence")
ports=()
start_all() {
  local i
  mkdir -p "$root/d0" "$root/d1" "$root/d2"
  srv_start "$root/s0.log" "$BIN" --dir "$root/d0" || return 1; ports[0]=$SRV_PORT
  srv_start "$root/s1.log" "$REDIS" --dir "$root/d1" --appendonly yes --appendfsync always \
    --save '' || return 1; ports[1]=$SRV_PORT
  srv_start "$root/s2.log" "$REDIS" --dir "$root/d2" --appendonly no --save '' || return 1
  ports[2]=$SRV_PORT
  for i in 0 1 2; do
    echo "# ${names[$i]} (${configs[$i]}) on 127.0.0.1:${ports[$i]}" >&2
  done
}
start_all || exit 1
echo "# $(redis-server --version | cut -d' ' -f1-3); N=$N rounds=$ROUNDS; $(nproc) CPUs;" \
  "data in $root ($(df -T "$root" | awk 'NR==2{print $2}'))" >&2

raw="$root/raw.csv"   # system,config,op,pipeline,round,rps,p50,p99
: >"$raw"
errors=0
for round in $(seq 1 "$ROUNDS"); do
  for P in 1 16; do
    for i in 0 1 2; do
      bench_once "$raw" "${names[$i]}" "${configs[$i]}" "${ports[$i]}" "$P" "$round" "$N" ||
        errors=$((errors + 1))
      echo "# round $round ${names[$i]} P=$P done" >&2
    done
  done
done

printf '\n%-9s %-18s %-4s %-8s %14s %9s %9s\n' system config op pipeline "ops/s(median)" \
  "p50 ms" "p99 ms"
for P in 1 16; do
  for op in SET GET; do
    for i in 0 1 2; do
      rps=$(bench_cell "$raw" "${names[$i]}" "${configs[$i]}" "$op" "$P" 6)
      p50=$(bench_cell "$raw" "${names[$i]}" "${configs[$i]}" "$op" "$P" 7)
      p99=$(bench_cell "$raw" "${names[$i]}" "${configs[$i]}" "$op" "$P" 8)
      printf '%-9s %-18s %-4s %-8s %14s %9s %9s\n' "${names[$i]}" "${configs[$i]}" "$op" "$P" \
        "$rps" "$p50" "$p99"
      eval "rps_${i}_${op}_${P}=\$rps"
    done
  done
done
echo
echo "ratio raftconf / redis(appendonly always), ops/s:"
for P in 1 16; do
  for op in SET GET; do
    a=$(eval echo "\$rps_0_${op}_${P}"); b=$(eval echo "\$rps_1_${op}_${P}")
    awk -v a="$a" -v b="$b" -v o="$op" -v p="$P" \
      'BEGIN { if (b > 0) printf "  %s -P %-2s %.2f\n", o, p, a / b;
               else print "  " o " -P " p " n/a" }'
  done
done
echo "raw rows (system,config,op,pipeline,round,ops/s,p50,p99):"
sed 's/^/  /' "$raw"
[ "$errors" -eq 0 ]
