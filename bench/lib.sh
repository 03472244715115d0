# shellcheck shell=bash
# bench/lib.sh - sourced by bench/*.sh: one redis-benchmark run recorded as CSV rows and the
# median of a column of numbers (redis-compare.sh, cluster-compare.sh); starting, watching and
# stopping servers by PID, free ports, INFO fields and CPU counters (run.sh, profile.sh).

# median < numbers  -> the median ("-" when there are none)
median() {
  sort -g | awk '{a[NR] = $1}
    END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2];
          else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# bench_once RAW SYSTEM CONFIG PORT PIPELINE ROUND N [TESTS]
# Runs redis-benchmark -t TESTS (default set,get) with 64-byte values over 100,000 random
# keys from 50 clients, appends "system,config,op,pipeline,round,ops/s,p50,p99" rows to RAW.
# Returns 1 when redis-benchmark failed or printed an error.
bench_once() {
  local raw=$1 sys=$2 cfg=$3 port=$4 P=$5 round=$6 n=$7 tests=${8:-set,get} out rc
  out=$(timeout 900 redis-benchmark -h 127.0.0.1 -p "$port" -t "$tests" -n "$n" \
    -r 100000 -d 64 -c 50 -P "$P" --csv 2>&1)
  rc=$?
  # "SET","83333.34","0.405","0.128","0.319","0.567","3.399","3.511"
  tr -d '"' <<<"$out" | awk -F, -v s="$sys" -v c="$cfg" -v p="$P" -v r="$round" \
    '$1=="SET"||$1=="GET" {print s","c","$1","p","r","$2","$5","$7}' >>"$raw"
  if [ $rc -ne 0 ] || grep -qiE 'error|refused|reset' <<<"$out"; then
    echo "ERROR $sys P=$P round $round rc=$rc: $(head -3 <<<"$out")" >&2
    return 1
  fi
  return 0
}

# bench_cell RAW SYSTEM CONFIG OP PIPELINE COLUMN -> median of that column (6 ops/s, 7 p50,
# 8 p99) over the rounds
bench_cell() {
  awk -F, -v s="$2" -v c="$3" -v o="$4" -v p="$5" '$1==s && $2==c && $3==o && $4==p' "$1" |
    cut -d, -f"$6" | grep . | median
}

# ---- used by bench/run.sh and bench/profile.sh --------------------------------------------
# Processes are started in the background of the calling shell (so `wait` reaps them and a
# kill -9 is seen at once), remembered in BL_PIDS, and stopped by PID only.

BL_PIDS=()
BL_PID=""

# bl_spawn LOG CMD ARGS...  start CMD in the background, output appended to LOG; sets BL_PID
bl_spawn() {
  local log=$1
  shift
  "$@" </dev/null >>"$log" 2>&1 &
  BL_PID=$!
  BL_PIDS+=("$BL_PID")
}

# bl_alive PID -> 0 while the process runs (a zombie counts as gone)
bl_alive() {
  kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# bl_stop PID [SIGNAL]  send SIGNAL (default TERM), wait <= 20 s, then SIGKILL; reap it
bl_stop() {
  local p=$1 sig=${2:-TERM}
  [ -n "$p" ] || return 0
  if bl_alive "$p"; then
    kill "-$sig" "$p" 2>/dev/null
    for _ in $(seq 200); do bl_alive "$p" || break; sleep 0.1; done
    if bl_alive "$p"; then
      echo "# pid $p ignored SIG$sig for 20 s, SIGKILL" >&2
      kill -KILL "$p" 2>/dev/null
    fi
  fi
  { wait "$p"; } 2>/dev/null # (the braces keep bash's "Killed" job notice quiet)
  return 0
}

# bl_stop_all  stop every process started with bl_spawn (for an EXIT trap)
bl_stop_all() {
  local p
  for p in "${BL_PIDS[@]}"; do bl_stop "$p"; done
  BL_PIDS=()
}

# bl_port  sets BL_PORT to a free port P on 127.0.0.1 whose P + 10000 is free too (raftconf's
# cluster port) and that this shell has not handed out before (call it without $(...)).
# Both lie below the kernel's ephemeral range, so an outgoing connection (a peer's dial, a
# client) cannot take the port between this pick and the server's bind.
BL_USED_PORTS=" "
BL_PORT=0
bl_port() {
  local p lo hi
  lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
  hi=$(( ${lo:-32768} - 10000 ))
  [ "$hi" -gt 12000 ] || hi=55000
  for _ in $(seq 100); do
    p=$((10000 + ${SRANDOM:-$((RANDOM * 32768 + RANDOM))} % (hi - 10000)))
    case "$BL_USED_PORTS" in *" $p "*|*" $((p + 10000)) "*|*" $((p - 10000)) "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
      ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 10000))") 2>/dev/null; then
      BL_USED_PORTS="$BL_USED_PORTS$p $((p + 10000)) "
      BL_PORT=$p
      return 0
    fi
  done
  return 1
}

# bl_wait_read PORT [SECONDS]  wait until PORT serves a read (EXISTS answers 0); 1 on timeout
bl_wait_read() {
  local port=$1 n=$(( ${2:-30} * 10 ))
  for _ in $(seq "$n"); do
    [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" EXISTS __probe__ 2>/dev/null)" = 0 ] &&
      return 0
    sleep 0.1
  done
  return 1
}

# bl_info PORT SECTION FIELD -> the value of FIELD in INFO SECTION (empty when unreachable)
bl_info() {
  timeout 2 redis-cli -h 127.0.0.1 -p "$1" INFO "$2" 2>/dev/null | tr -d '\r' |
    awk -F: -v f="$3" '$1==f {print $2; exit}'
}

# bl_leader PORT... -> the port whose INFO raft says role:leader (empty if none)
bl_leader() {
  local p
  for p in "$@"; do
    [ "$(bl_info "$p" raft role)" = leader ] && { echo "$p"; return 0; }
  done
  return 1
}

# bl_cpu_ticks PID... -> utime + stime of those processes, in clock ticks
bl_cpu_ticks() {
  local p t=0 s
  for p in "$@"; do
    s=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || s=0
    t=$((t + ${s:-0}))
  done
  echo "$t"
}

# bl_rss_kb PID -> resident set size in KiB
bl_rss_kb() {
  awk '$1=="VmRSS:" {print $2}' "/proc/$1/status" 2>/dev/null
}

# bl_now_ns -> CLOCK_REALTIME in nanoseconds (what rcload's -l log uses)
bl_now_ns() {
  date +%s%N
}

# bl_machine_busy -> busy jiffies of the whole machine so far (every CPU: user, nice, system,
# irq, softirq, steal; not idle or iowait), from /proc/stat
bl_machine_busy() {
  awk '$1=="cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}
