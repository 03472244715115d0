# lib/server.sh - sourced by tests/integration/*.sh and bench/*.sh: start servers on free
# ports on 127.0.0.1 and stop them by PID. Not a test itself (run-tests.sh only runs
# tests/integration/*.sh).
#
#   srv_start LOG BIN ARGS...   start "BIN --port P --bind 127.0.0.1 ARGS..." (append output
#                               to LOG); sets SRV_PID and SRV_PORT; waits (<= 15 s) until a
#                               read is served; retries on another port when the bind fails
#   srv_stop PID                SIGTERM, wait <= 10 s, then SIGKILL; reaps it
#   srv_stop_all                stop every server started here (use in an EXIT trap)

SRV_PIDS=()
SRV_PID=""
SRV_PORT=0

srv_pick_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + ${SRANDOM:-$((RANDOM * 32768 + RANDOM))} % 35000))
    # raftconf also takes port + 10000 (cluster bus), so that must be free too
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
      ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 10000))") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

srv_stop() {
  local p=$1
  [ -n "$p" ] || return 0
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
      echo "pid $p ignored SIGTERM, SIGKILL" >&2
      kill -KILL "$p"
    fi
  fi
  wait "$p" 2>/dev/null
  return 0
}

srv_stop_all() {
  local p
  for p in "${SRV_PIDS[@]}"; do srv_stop "$p"; done
  SRV_PIDS=()
}

srv_start() {
  local log=$1 bin=$2 port pid
  shift 2
  for _ in 1 2 3 4 5; do
    port=$(srv_pick_port) || return 1
    "$bin" --port "$port" --bind 127.0.0.1 "$@" >>"$log" 2>&1 &
    pid=$!
    SRV_PIDS+=("$pid")
    for _ in $(seq 150); do
      kill -0 "$pid" 2>/dev/null || break
      # ready = a read is served (a leader exists), not just PING
      if [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" EXISTS __probe__ 2>/dev/null)" = 0 ]
      then
        SRV_PID=$pid; SRV_PORT=$port
        return 0
      fi
      sleep 0.1
    done
    srv_stop "$pid"
  done
  echo "server $bin did not start; log $log:" >&2
  tail -30 "$log" >&2
  return 1
}
