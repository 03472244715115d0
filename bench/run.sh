#!/usr/bin/env bash
# bench/run.sh - raftconf next to durable Redis, in-memory Redis and etcd, in one run.
#
#   bench/run.sh [--quick] [--out FILE] [--rounds N] [--only LIST] [--keep]
#   make bench                    (the same, full mode)
#
#   --quick       1 round, fewer requests, 3 failover repetitions, recovery with 100,000
#                 keys instead of 1,000,000 (for trying it out; ~4 minutes)
#   --out FILE    JSON result (default bench/results/latest.json)
#   --rounds N    rounds of the throughput table (default 3, quick 1)
#   --only LIST   comma list of sections: tput,failover,recovery (default all)
#   --keep        keep the work directory (logs, raw CSV) instead of deleting it
#
# Installs what it lacks from Debian (redis-server redis-tools etcd-server etcd-client wrk,
# and the build's -dev libraries, as root with apt-get), builds bin/raftconf-server with
# `make -j2` unless RAFTCONF_BIN names a server binary (BENCH_COMMIT: the commit it was
# built from, for the report), and starts every system on 127.0.0.1 on free ports with fresh
# data directories
# under one mktemp directory; everything it starts is stopped by PID (trap on exit).
#
# Sections:
#   tput      the table. Systems: raftconf single node; raftconf 3-node cluster (leader;
#             follower reads); redis appendonly yes + appendfsync always; redis without
#             persistence; etcd 3 members. Workloads at 50 clients, 64-byte values over
#             100,000 random keys, pipeline 1 and 16: SET, GET, CFG.SET, CFG.GET
#             (redis-benchmark), linearizable and READONLY GET on a follower and a 90/10
#             GET/SET mix (bench/rcload.c, which can send READONLY first on a connection),
#             etcd put / range / mix through its HTTP gateway (wrk + bench/etcd-kv.lua).
#             Rounds interleave every system per workload; cells are medians over rounds.
#   failover  fresh 3-node cluster, default settings: idle check (no term change), then
#             kill -9 of the leader and SIGTERM of the leader under a steady write loop.
#   recovery  restart of a node holding N keys with N log entries past its snapshot, a new
#             node catching up by snapshot, and resident memory per N keys next to Redis.
# Output: the table and summaries on stdout, progress on stderr, JSON in --out.
# shellcheck disable=SC2154 # P_*, PID_*, CP_*, CPID_*, EP_* are assigned with printf -v
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
QUICK=0 OUT="$here/results/latest.json" ROUNDS="" ONLY="tput,failover,recovery" KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --keep) KEEP=1 ;;
    *) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  : "${ROUNDS:=1}"; N1=20000 N16=60000 DUR=2 REPS=3 RKEYS=100000 IDLE_S=5
else
  : "${ROUNDS:=3}"; N1=60000 N16=160000 DUR=5 REPS=10 RKEYS=1000000 IDLE_S=30
fi
CLIENTS=50 KEYSPACE=100000 VSIZE=64
VALUE=$(printf 'x%.0s' $(seq "$VSIZE"))
section() { [[ ",$ONLY," == *",$1,"* ]]; }
log() { echo "# $(date +%T) $*" >&2; }

# ---- dependencies, build -------------------------------------------------------------------
need_install=()
for pair in redis-server:redis-server redis-benchmark:redis-tools redis-cli:redis-tools \
  etcd:etcd-server etcdctl:etcd-client wrk:wrk cc:gcc make:make /usr/bin/python3:python3; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_install+=("${pair#*:}")
done
if [ -z "${RAFTCONF_BIN:-}" ]; then # what building the server needs (scripts/deps.sh has all)
  for p in libevent-dev libleveldb-dev libxxhash-dev libjansson-dev libpcre2-dev libssl-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      need_install+=("$p")
  done
fi
if [ ${#need_install[@]} -gt 0 ]; then
  log "installing from Debian: ${need_install[*]}"
  if [ "$(id -u)" != 0 ]; then echo "run as root or install: ${need_install[*]}" >&2; exit 1; fi
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "${need_install[@]}" >&2 || { echo "apt-get install failed" >&2; exit 1; }
fi
if [ -z "${RAFTCONF_BIN:-}" ]; then
  log "building raftconf (make -j2 bin/raftconf-server)"
  make -C "$repo" -j2 bin/raftconf-server >&2 || { echo "build failed" >&2; exit 1; }
  RAFTCONF_BIN="$repo/bin/raftconf-server"
fi
BIN=$RAFTCONF_BIN
[ -x "$BIN" ] || { echo "no raftconf server binary at $BIN" >&2; exit 1; }

# shellcheck source=../tests/integration/lib/server.sh
. "$repo/tests/integration/lib/server.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
root=$(mktemp -d /tmp/raftconf-bench-XXXXXX)
cleanup() {
  bl_stop_all
  if [ "$KEEP" = 1 ]; then echo "# work directory kept: $root" >&2; else rm -rf "$root"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
RCLOAD="$root/rcload"
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$RCLOAD" "$here/rcload.c" ||
  { echo "cannot build bench/rcload.c" >&2; exit 1; }
RAW="$root/raw.csv" FAIL="$root/failover.csv" REC="$root/recovery.txt"
: >"$RAW"; : >"$FAIL"; : >"$REC"
CLK_TCK=$(getconf CLK_TCK)

# ---- starting systems ----------------------------------------------------------------------
# rc_single NAME ARGS... -> P_<NAME> (port), PID_<NAME>
rc_single() {
  local name=$1; shift
  bl_port; local port=$BL_PORT
  mkdir -p "$root/$name"
  bl_spawn "$root/$name.log" "$BIN" --port "$port" --bind 127.0.0.1 --dir "$root/$name" "$@"
  printf -v "P_$name" %s "$port"; printf -v "PID_$name" %s "$BL_PID"
  bl_wait_read "$port" 30 ||
    { echo "raftconf $name did not start" >&2; tail "$root/$name.log" >&2; exit 1; }
}

# rc_cluster NAME -> ports CP_<NAME>_{1,2,3}, pids CPID_<NAME>_{1,2,3}; node_args in
# CARGS_<NAME>_<k> (to restart it)
rc_cluster() {
  local name=$1 k spec="" secret port
  secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  for k in 1 2 3; do
    bl_port; printf -v "CP_${name}_$k" %s "$BL_PORT"
    spec="$spec${spec:+,}$k=127.0.0.1:$BL_PORT"
  done
  for k in 1 2 3; do
    port=$(eval echo "\$CP_${name}_$k")
    mkdir -p "$root/$name-$k"
    printf -v "CARGS_${name}_$k" %s "--node-id $k --port $port --bind 127.0.0.1 \
--dir $root/$name-$k --cluster-secret $secret --initial-cluster $spec"
    rc_cluster_start "$name" "$k"
  done
  for k in 1 2 3; do
    bl_wait_read "$(eval echo "\$CP_${name}_$k")" 30 ||
      { echo "cluster $name node $k not serving" >&2; exit 1; }
  done
}
rc_cluster_start() { # NAME K  (re)start node K with its recorded arguments
  local args; args=$(eval echo "\$CARGS_$1_$2")
  # shellcheck disable=SC2086
  bl_spawn "$root/$1-$2.log" "$BIN" $args
  printf -v "CPID_$1_$2" %s "$BL_PID"
}

# redis_start NAME ARGS... -> P_<NAME>, PID_<NAME>
redis_start() {
  local name=$1; shift
  bl_port; local port=$BL_PORT
  mkdir -p "$root/$name"
  bl_spawn "$root/$name.log" redis-server --port "$port" --bind 127.0.0.1 --dir "$root/$name" \
    --save '' "$@"
  printf -v "P_$name" %s "$port"; printf -v "PID_$name" %s "$BL_PID"
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "redis $name did not start" >&2; exit 1
}

# etcd_cluster -> EP_{1,2,3} client ports, EPID_{1,2,3}, ETCD_LEADER (client port)
etcd_cluster() {
  local k spec="" peer token
  token="bench-$$-$RANDOM"
  for k in 1 2 3; do
    bl_port; printf -v "EP_$k" %s "$BL_PORT"
    bl_port; printf -v "EPP_$k" %s "$BL_PORT"
    spec="$spec${spec:+,}e$k=http://127.0.0.1:$BL_PORT"
  done
  for k in 1 2 3; do
    local cp pp; cp=$(eval echo "\$EP_$k"); pp=$(eval echo "\$EPP_$k")
    bl_spawn "$root/etcd-$k.log" etcd --name "e$k" --data-dir "$root/etcd-$k" \
      --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
      --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls \
      "http://127.0.0.1:$pp" --initial-cluster "$spec" --initial-cluster-token "$token" \
      --initial-cluster-state new
    printf -v "EPID_$k" %s "$BL_PID"
  done
  ETCD_LEADER=""
  for _ in $(seq 150); do
    for k in 1 2 3; do
      peer=$(eval echo "\$EP_$k")
      if ETCDCTL_API=3 timeout 3 etcdctl --endpoints "127.0.0.1:$peer" endpoint status \
        -w json 2>/dev/null | python3_is_leader; then
        ETCD_LEADER=$peer; return 0
      fi
    done
    sleep 0.2
  done
  echo "etcd cluster has no leader" >&2; tail "$root/etcd-1.log" >&2; exit 1
}
python3_is_leader() { # stdin: etcdctl endpoint status -w json -> 0 if that member leads
  /usr/bin/python3 -c 'import json,sys
try:
    s = json.load(sys.stdin)[0]["Status"]
except Exception:
    sys.exit(1)
sys.exit(0 if s["leader"] and s["header"]["member_id"] == s["leader"] else 1)' 2>/dev/null
}

# ---- one measured run ----------------------------------------------------------------------
# measure SYSTEM CONFIG OP TOOL PIPELINE ROUND "SERVER-PIDS" CMD...  -> a row in $RAW:
# system,config,op,tool,clients,pipeline,round,rps,p50,p99,errors,cli_cpu,srv_cpu,other_cpu
# (other_cpu: the machine's busy CPU during the run minus server and client: other load)
measure() {
  local sys=$1 cfg=$2 op=$3 tool=$4 P=$5 round=$6 pids=$7 t0 t1 w0 w1 m0 m1 tm rps p50 p99 err=0
  shift 7
  # shellcheck disable=SC2086
  t0=$(bl_cpu_ticks $pids); w0=$(bl_now_ns); m0=$(bl_machine_busy)
  { TIMEFORMAT='%3R %3U %3S'; time "$@" >"$root/out" 2>&1; } 2>"$root/time"
  # shellcheck disable=SC2086
  w1=$(bl_now_ns); t1=$(bl_cpu_ticks $pids); m1=$(bl_machine_busy)
  tm=$(tail -1 "$root/time")
  case $tool in
    redis-benchmark)
      read -r rps p50 p99 < <(tr -d '"' <"$root/out" | awk -F, '$1!="test" && NF>=8 && $2+0>0 \
        {print $2, $5, $7; exit}')
      grep -qiE 'error|refused|reset' "$root/out" && err=1 ;;
    rcload|wrk)
      read -r rps p50 p99 err < <(awk '/rps=/ {for (i = 1; i <= NF; i++) { split($i, kv, "=");
        v[kv[1]] = kv[2] } print v["rps"], v["p50_ms"], v["p99_ms"], v["errors"] + v["lost"]}' \
        "$root/out") ;;
  esac
  if [ -z "${rps:-}" ] || [ "${err:-0}" != 0 ]; then
    log "WARNING $sys/$cfg $op P=$P: errors=${err:-?} output: $(head -c 300 "$root/out")"
  fi
  awk -v s="$sys" -v c="$cfg" -v o="$op" -v t="$tool" -v cl="$CLIENTS" -v p="$P" -v r="$round" \
    -v rps="${rps:-0}" -v a="${p50:-0}" -v b="${p99:-0}" -v e="${err:-1}" -v tm="$tm" \
    -v st=$((t1 - t0)) -v hz="$CLK_TCK" -v w=$((w1 - w0)) -v mb=$((m1 - m0)) 'BEGIN {
    split(tm, x, " "); cli = x[1] > 0 ? 100 * (x[2] + x[3]) / x[1] : 0
    srv = w > 0 ? 100 * st / hz / (w / 1e9) : 0
    oth = w > 0 ? 100 * mb / hz / (w / 1e9) - srv - cli : 0
    printf "%s,%s,%s,%s,%d,%d,%d,%.0f,%.3f,%.3f,%d,%.0f,%.0f,%.0f\n", s, c, o, t, cl, p, r,
      rps, a, b, e, cli, srv, oth < 0 ? 0 : oth }' >>"$RAW"
  log "$sys ($cfg) $op P=$P round $round: ${rps:-?} ops/s"
}

rb() { # PORT PIPELINE N ARGS...  redis-benchmark with the common workload
  local port=$1 P=$2 n=$3; shift 3
  timeout 900 redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" -n "$n" -r "$KEYSPACE" \
    -d "$VSIZE" -P "$P" --csv "$@"
}
rl() { # PORT(S) PIPELINE ARGS...  rcload with the common workload for $DUR seconds
  local ports=$1 P=$2; shift 2
  timeout 300 "$RCLOAD" -p "$ports" -c "$CLIENTS" -P "$P" -d "$DUR" -r "$KEYSPACE" -s "$VSIZE" "$@"
}
wk() { # OP  wrk against the etcd leader's gateway
  timeout 300 wrk -t 2 -c "$CLIENTS" -d "${DUR}s" -s "$here/etcd-kv.lua" \
    "http://127.0.0.1:$ETCD_LEADER" -- "$1" "$KEYSPACE"
}

# m SYS OP TOOL ARGS...  one measured cell of the throughput section: SYS is rc1 (single
# node), rcL / rcF (cluster leader / follower), raof, rmem (redis) or etcd; TOOL is rb, rl
# or wk (above), given PORT ARGS... (rb, rl) or OP (wk); uses $P, $n and $round.
m() {
  local sys=$1 op=$2 tool=$3 name cfg pids kind; shift 3
  case $sys in
    rc1) name=raftconf cfg="single node" pids=$PID_rc1 ;;
    rcL) name=raftconf-3 cfg=leader pids="$CPID_c3_1 $CPID_c3_2 $CPID_c3_3" ;;
    rcF) name=raftconf-3 cfg=follower pids="$CPID_c3_1 $CPID_c3_2 $CPID_c3_3" ;;
    raof) name=redis cfg="appendonly always" pids=$PID_raof ;;
    rmem) name=redis cfg="no persistence" pids=$PID_rmem ;;
    etcd) name=etcd-3 cfg="3 members" pids="$EPID_1 $EPID_2 $EPID_3" ;;
  esac
  case $tool in rb) kind=redis-benchmark ;; rl) kind=rcload ;; *) kind=wrk ;; esac
  case $tool in
    rb) measure "$name" "$cfg" "$op" "$kind" "$P" "$round" "$pids" rb "$1" "$P" "$n" "${@:2}" ;;
    rl) measure "$name" "$cfg" "$op" "$kind" "$P" "$round" "$pids" rl "$1" "$P" "${@:2}" ;;
    wk) measure "$name" "$cfg" "$op" "$kind" 1 "$round" "$pids" wk "$@" ;;
  esac
}

# ---- section: throughput -------------------------------------------------------------------
tput_section() {
  log "starting systems"
  rc_single rc1
  rc_cluster c3
  redis_start raof --appendonly yes --appendfsync always
  redis_start rmem --appendonly no
  etcd_cluster
  local lead fol
  lead=$(bl_leader "$CP_c3_1" "$CP_c3_2" "$CP_c3_3") || { echo "no raftconf leader" >&2; exit 1; }
  for p in "$CP_c3_1" "$CP_c3_2" "$CP_c3_3"; do [ "$p" != "$lead" ] && fol=$p && break; done
  log "raftconf :$P_rc1, cluster leader :$lead follower :$fol, redis aof :$P_raof" \
    "mem :$P_rmem, etcd leader :$ETCD_LEADER; rounds=$ROUNDS"
  # Prime the keyspace so GETs hit (every key written once, pipelined).
  local pr
  for pr in "$P_rc1" "$lead" "$P_raof" "$P_rmem"; do
    rb "$pr" 64 "$KEYSPACE" -t set >/dev/null 2>&1
  done
  timeout 120 wrk -t 2 -c "$CLIENTS" -d "$DUR"s -s "$here/etcd-kv.lua" \
    "http://127.0.0.1:$ETCD_LEADER" -- put "$KEYSPACE" >/dev/null 2>&1
  local round P n cs="CFG.SET key:__rand_int__ $VALUE" cg="CFG.GET key:__rand_int__"
  for round in $(seq 1 "$ROUNDS"); do
    for P in 1 16; do
      n=$N1; [ "$P" -gt 1 ] && n=$N16
      m rc1 SET rb "$P_rc1" -t set; m rcL SET rb "$lead" -t set
      m raof SET rb "$P_raof" -t set; m rmem SET rb "$P_rmem" -t set
      m rc1 GET rb "$P_rc1" -t get; m rcL GET rb "$lead" -t get; m rcF GET rb "$fol" -t get
      m raof GET rb "$P_raof" -t get; m rmem GET rb "$P_rmem" -t get
      # shellcheck disable=SC2086
      {
        m rc1 CFG.SET rb "$P_rc1" $cs; m rcL CFG.SET rb "$lead" $cs
        m rc1 CFG.GET rb "$P_rc1" $cg; m rcL CFG.GET rb "$lead" $cg
      }
      # Follower reads and their reference, measured with the same tool.
      m rcF "GET READONLY" rl "$fol" -m 100 -R; m rcF GET rl "$fol" -m 100
      m raof GET rl "$P_raof" -m 100
    done
    P=1
    m rc1 "MIX 90/10" rl "$P_rc1" -m 90; m rcL "MIX 90/10" rl "$lead" -m 90
    m raof "MIX 90/10" rl "$P_raof" -m 90; m rmem "MIX 90/10" rl "$P_rmem" -m 90
    m etcd put wk put; m etcd range wk range; m etcd "MIX 90/10" wk mix
  done
  bl_stop_all
}

# ---- section: failover ---------------------------------------------------------------------
# fo_analyse LOG SIG_NS AFTER_NS LEADER_PORT -> "avail_ms max_gap_ms failed failed_leader"
# avail: from SIG_NS (just before the signal) to the completion of the first successful
# write sent after AFTER_NS (kill -9: once the old leader is reaped, so no write it
# answered counts; SIGTERM: once kill returned); max gap: longest time without a
# successful completion, from 1 s before the signal to the end; failed: error replies +
# writes lost with their connection, those on connections to the old leader apart.
fo_analyse() {
  sort -n -k2,2 "$1" | awk -v t="$2" -v ta="$3" -v lp="$4" '
    $3 == 0 && $1 >= ta && (first == "" || $2 < first) { first = $2 }
    $3 == 0 && $2 >= t - 1e9 { if (last != "" && $2 - last > gap) gap = $2 - last; last = $2 }
    $3 != 0 && $5 != lp { failed++ }
    $3 != 0 && $5 == lp { failed_l++ }
    END { printf "%.0f %.0f %d %d\n", first == "" ? -1 : (first - t) / 1e6, gap / 1e6,
          failed, failed_l }'
}

# fo_rep MODE REP  (MODE kill: SIGKILL, writers on the followers; term: SIGTERM, writers on
# all three nodes, reconnecting to the next node when theirs closes)
fo_rep() {
  local mode=$1 rep=$2 lead k lk="" ports="" p t_sig t_after t_exit res lpid wpid
  local flog="$root/fo.log"
  lead=$(bl_leader "$CP_fo_1" "$CP_fo_2" "$CP_fo_3") || { log "failover: no leader"; return 1; }
  for k in 1 2 3; do
    p=$(eval echo "\$CP_fo_$k")
    if [ "$p" = "$lead" ]; then lk=$k; elif [ "$mode" = kill ]; then ports="$ports${ports:+,}$p"; fi
  done
  [ "$mode" = term ] && ports="$lead,$CP_fo_1,$CP_fo_2,$CP_fo_3" && ports=$(tr , '\n' <<<"$ports" |
    awk '!s[$0]++' | paste -sd,)
  lpid=$(eval echo "\$CPID_fo_$lk")
  "$RCLOAD" -p "$ports" -c 6 -P 1 -d 3600 -r "$KEYSPACE" -s "$VSIZE" -m 0 -a -l "$flog" \
    >"$root/fo.out" 2>&1 &
  wpid=$!
  sleep 1.5
  t_sig=$(bl_now_ns)
  if [ "$mode" = kill ]; then
    kill -KILL "$lpid"; wait "$lpid" 2>/dev/null; t_after=$(bl_now_ns); t_exit=$t_after
  else
    kill -TERM "$lpid"; t_after=$(bl_now_ns); wait "$lpid" 2>/dev/null; t_exit=$(bl_now_ns)
  fi
  for _ in $(seq 100); do
    bl_leader $(for k in 1 2 3; do [ "$k" != "$lk" ] && eval echo "\$CP_fo_$k"; done) \
      >/dev/null && break
    sleep 0.1
  done
  sleep 1
  kill -TERM "$wpid"; wait "$wpid" 2>/dev/null
  res=$(fo_analyse "$flog" "$t_sig" "$t_after" "$lead")
  echo "$mode,$rep,${res// /,},$(( (t_exit - t_sig) / 1000000 )),$(tail -1 "$root/fo.out" |
    awk '{print $3}' | cut -d= -f2)" >>"$FAIL"
  log "failover $mode rep $rep: avail_ms max_gap_ms failed failed_leader_conns = $res;" \
    "old leader exited after $(( (t_exit - t_sig) / 1000000 )) ms"
  rc_cluster_start fo "$lk"
  bl_wait_read "$(eval echo "\$CP_fo_$lk")" 30 || log "failover: node $lk did not come back"
  sleep 1
}

failover_section() {
  log "failover: fresh 3-node cluster, default settings"
  rc_cluster fo
  local lead t0 t1 m0 m1
  lead=$(bl_leader "$CP_fo_1" "$CP_fo_2" "$CP_fo_3")
  t0=$(bl_info "$lead" raft term); m0=$(bl_info "$lead" raft meta_term)
  log "idle check: ${IDLE_S} s without load"
  sleep "$IDLE_S"
  lead=$(bl_leader "$CP_fo_1" "$CP_fo_2" "$CP_fo_3")
  t1=$(bl_info "$lead" raft term); m1=$(bl_info "$lead" raft meta_term)
  echo "idle_seconds=$IDLE_S" >>"$REC"
  echo "idle_term_changes=$(( t1 - t0 + m1 - m0 ))" >>"$REC"
  local rep
  for rep in $(seq 1 "$REPS"); do fo_rep kill "$rep"; done
  for rep in $(seq 1 "$REPS"); do fo_rep term "$rep"; done
  bl_stop_all
}

# ---- section: recovery and memory ----------------------------------------------------------
# load_file N -> $root/load.resp: N SETs of key:<12 digits> (0..N-1) with a VSIZE-byte value
load_file() {
  awk -v n="$1" -v v="$VALUE" 'BEGIN { for (i = 0; i < n; i++)
    printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$%d\r\n%s\r\n", i, length(v), v }' \
    >"$root/load.resp"
}

# mass_load PORT -> seconds taken by redis-cli --pipe of $root/load.resp (its errors to log)
mass_load() {
  local t0 t1
  t0=$(bl_now_ns)
  redis-cli -h 127.0.0.1 -p "$1" --pipe <"$root/load.resp" >"$root/pipe.out" 2>&1 ||
    log "redis-cli --pipe failed: $(tail -2 "$root/pipe.out")"
  grep -q 'errors: 0' "$root/pipe.out" || log "redis-cli --pipe: $(tail -1 "$root/pipe.out")"
  t1=$(bl_now_ns)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) / 1e9 }'
}

# time_restart NAME PORT ARGS...  sets RESTART_MS: ms from exec to the first read served
# (call it without $(...): the server must be this shell's child)
time_restart() {
  local name=$1 port=$2 t0; shift 2
  t0=$(bl_now_ns)
  bl_spawn "$root/$name.log" "$BIN" --port "$port" --bind 127.0.0.1 "$@"
  printf -v "PID_$name" %s "$BL_PID"
  RESTART_MS=-1
  bl_wait_read "$port" 600 || { log "restart of $name failed"; return; }
  RESTART_MS=$(( ($(bl_now_ns) - t0) / 1000000 ))
}

log_entries() { # PORT -> entries in the data group's log past its snapshot
  echo $(( $(bl_info "$1" raft last_index) - $(bl_info "$1" raft snapshot_index) ))
}

recovery_section() {
  local keys=$RKEYS secs rss0 rss1 port
  log "recovery: generating $keys SETs"
  load_file "$keys"
  echo "keys=$keys" >>"$REC"
  # Redis (no persistence): the memory reference.
  redis_start rrec --appendonly no
  rss0=$(bl_rss_kb "$PID_rrec")
  secs=$(mass_load "$P_rrec")
  rss1=$(bl_rss_kb "$PID_rrec")
  echo "redis_load_s=$secs redis_rss_empty_kb=$rss0 redis_rss_loaded_kb=$rss1" \
    "redis_dbsize=$(redis-cli -p "$P_rrec" DBSIZE)" >>"$REC"
  bl_stop "$PID_rrec"
  # A: a node whose log keeps every entry (snapshot-entries above the load).
  rc_single rka --snapshot-entries 4000000000
  port=$P_rka
  rss0=$(bl_rss_kb "$PID_rka")
  secs=$(mass_load "$port")
  rss1=$(bl_rss_kb "$PID_rka")
  echo "rc_load_s=$secs rc_rss_empty_kb=$rss0 rc_rss_loaded_kb=$rss1" \
    "rc_dbsize=$(redis-cli -p "$port" DBSIZE)" \
    "rc_log_entries=$(log_entries "$port")" \
    "rc_dir_mb=$(du -sm "$root/rka" | cut -f1)" >>"$REC"
  bl_stop "$PID_rka" TERM
  time_restart rka "$port" --dir "$root/rka" --snapshot-entries 4000000000
  echo "restart_clean_ms=$RESTART_MS rc_rss_restarted_kb=$(bl_rss_kb "$PID_rka")" >>"$REC"
  bl_stop "$PID_rka" KILL
  time_restart rka "$port" --dir "$root/rka" --snapshot-entries 4000000000
  echo "restart_crash_ms=$RESTART_MS" \
    "rc_log_entries_after=$(log_entries "$port")" \
    >>"$REC"
  bl_stop "$PID_rka"
  # B: a one-member cluster with default snapshot-entries; a new node joins by snapshot.
  snapshot_catchup "$keys"
  bl_stop_all
}

snapshot_catchup() {
  local p1 p2 secret t0 target applied
  secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  bl_port; p1=$BL_PORT; bl_port; p2=$BL_PORT
  mkdir -p "$root/sn1" "$root/sn2"
  bl_spawn "$root/sn1.log" "$BIN" --node-id 1 --port "$p1" --bind 127.0.0.1 --dir "$root/sn1" \
    --cluster-secret "$secret" --initial-cluster "1=127.0.0.1:$p1"
  PID_sn1=$BL_PID
  bl_wait_read "$p1" 30 || { log "snapshot node 1 did not start"; return 1; }
  echo "snap_load_s=$(mass_load "$p1")" >>"$REC"
  bl_spawn "$root/sn2.log" "$BIN" --node-id 2 --port "$p2" --bind 127.0.0.1 --dir "$root/sn2" \
    --cluster-secret "$secret" --initial-cluster "1=127.0.0.1:$p1"
  PID_sn2=$BL_PID
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$p2" PING 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  target=$(bl_info "$p1" raft commit_index)
  t0=$(bl_now_ns)
  redis-cli -p "$p1" CFG.CLUSTER ADD 2 "127.0.0.1:$p2" LEARNER >"$root/add.out" 2>&1
  grep -q OK "$root/add.out" || log "CFG.CLUSTER ADD: $(cat "$root/add.out")"
  for _ in $(seq 6000); do
    applied=$(bl_info "$p2" raft applied_index)
    [ -n "$applied" ] && [ "$applied" -ge "$target" ] && break
    sleep 0.05
  done
  echo "snapshot_catchup_ms=$(( ($(bl_now_ns) - t0) / 1000000 ))" \
    "snap_leader_snapshot_index=$(bl_info "$p1" raft snapshot_index)" \
    "snap_target_index=$target snap_follower_applied=${applied:-?}" \
    "snapshots_received=$(bl_info "$p2" raft snapshots_received)" \
    "snap_follower_rss_kb=$(bl_rss_kb "$PID_sn2")" \
    "snap_leader_rss_kb=$(bl_rss_kb "$PID_sn1")" \
    "snap_leader_dir_mb=$(du -sm "$root/sn1" | cut -f1)" \
    "snap_follower_dir_mb=$(du -sm "$root/sn2" | cut -f1)" >>"$REC"
  bl_stop "$PID_sn2"; bl_stop "$PID_sn1"
}

# ---- main ----------------------------------------------------------------------------------
T_START=$(date +%s)
# The commit measured: BENCH_COMMIT names the commit RAFTCONF_BIN was built from; otherwise
# HEAD now (plus a note when src/ has uncommitted changes), taken before the run.
COMMIT=${BENCH_COMMIT:-$(git -C "$repo" rev-parse --short HEAD 2>/dev/null)}
[ -z "${BENCH_COMMIT:-}" ] && [ -n "$(git -C "$repo" status --porcelain --untracked-files=no \
  src 2>/dev/null)" ] && COMMIT="$COMMIT (with uncommitted changes in src/)"
log "raftconf $BIN; $(redis-server --version | cut -d' ' -f3); etcd $(etcd --version |
  awk '/etcd Version/ {print $3}'); $(nproc) CPUs; mode $([ "$QUICK" = 1 ] && echo quick ||
  echo full); work dir $root"
section tput && tput_section
section failover && failover_section
section recovery && recovery_section
mkdir -p "$(dirname "$OUT")"
/usr/bin/python3 "$here/report.py" --raw "$RAW" --failover "$FAIL" --recovery "$REC" \
  --out "$OUT" --mode "$([ "$QUICK" = 1 ] && echo quick || echo full)" --rounds "$ROUNDS" \
  --seconds $(( $(date +%s) - T_START )) --bin "$BIN" --commit "$COMMIT" \
  --command "bench/run.sh $([ "$QUICK" = 1 ] && echo --quick)"
