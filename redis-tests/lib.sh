# redis-tests/lib.sh - sourced by redis-tests/test_*.sh (not a suite itself: run-tests.sh
# runs only test_*.sh). Starts raftconf servers on free ports of 127.0.0.1, each in its own
# directory under $RT_ROOT, and stops them by PID.
#
#   rt_start NAME [ARGS...]    one server: $RT_ROOT/NAME/{data,log,port,pid,args}; waits
#                              until a read is served (<= 15 s); sets RT_PORT
#   rt_restart NAME            stop by PID, start again on the same port with the same data
#   rt_stop NAME               SIGTERM (then SIGKILL after 10 s), by the PID in NAME/pid
#   rt_cluster NAME N          N nodes NAME1..NAMEN forming one cluster (shared secret,
#                              --initial-cluster); waits until every node serves a read;
#                              sets RT_PORTS (space separated client ports)
#   rt_cleanup                 stop every server started under $RT_ROOT (the EXIT trap)
#   ok NAME / bad NAME LINES.. count a pass / print and count a failure
#   rt_summary SUITE           print "SUITE: N passed, N failed"; status 0 when none failed
#   rt_npm_ready               `npm ci` into redis-tests/node_modules unless it is current
#
# Executed (not sourced) as `bash lib.sh restart DIR`, it restarts the server of DIR; the
# Node.js and Python tests call that to test reconnection. The new PID goes to DIR/pid, so
# the suite's EXIT trap still finds it.
# The server binary is $RAFTCONF_BIN (scripts/run-tests.sh exports it), default
# build/raftconf-server.

RT_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RT_BIN=${RAFTCONF_BIN:-build/raftconf-server}
case "$RT_BIN" in /*) ;; *) RT_BIN="$(pwd)/$RT_BIN" ;; esac
export RAFTCONF_BIN=$RT_BIN
RT_PORT=0
RT_PORTS=""
passed=${passed:-0}
failed=${failed:-0}

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; shift; printf '  %s\n' "$@"; }
rt_summary() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

rt_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Ports are taken below the kernel's ephemeral range (32768..), cluster port included, so an
# outgoing connection's local port never takes one between the check and the bind.
rt_pick_port() { # a port p with p and p+10000 (the cluster port) free
  local p
  for _ in $(seq 50); do
    p=$((20000 + ${SRANDOM:-$((RANDOM * 32768 + RANDOM))} % 2700))
    if rt_port_free "$p" && rt_port_free $((p + 10000)); then echo "$p"; return 0; fi
  done
  return 1
}

rt_alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

rt_ready() { # port -> 0 once a read is served there (a leader exists), <= 15 s
  for _ in $(seq 150); do
    [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" EXISTS __probe__ 2>/dev/null)" = 0 ] &&
      return 0
    sleep 0.1
  done
  return 1
}

rt_spawn() { # dir: start "$RT_BIN --port P --bind 127.0.0.1 --dir DIR/data ARGS" (no wait)
  local d=$1 port
  port=$(cat "$d/port")
  mapfile -t args <"$d/args"
  "$RT_BIN" --port "$port" --bind 127.0.0.1 --dir "$d/data" "${args[@]}" \
    </dev/null >>"$d/log" 2>&1 &
  echo $! >"$d/pid"
}

rt_stop_dir() { # dir: stop the server whose PID is in dir/pid
  local p
  p=$(cat "$1/pid" 2>/dev/null) || return 0
  [ -n "$p" ] || return 0
  if rt_alive "$p"; then
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 100); do rt_alive "$p" || break; sleep 0.1; done
    rt_alive "$p" && { echo "pid $p ignored SIGTERM, SIGKILL" >&2; kill -KILL "$p"; }
  fi
  wait "$p" 2>/dev/null
  : >"$1/pid"
}

rt_start() { # name args...
  local name=$1 d
  shift
  d="$RT_ROOT/$name"
  mkdir -p "$d/data"
  printf '%s\n' "$@" >"$d/args"
  [ $# -eq 0 ] && : >"$d/args"
  for _ in 1 2 3; do
    rt_pick_port >"$d/port" || return 1
    rt_spawn "$d"
    if rt_ready "$(cat "$d/port")"; then RT_PORT=$(cat "$d/port"); return 0; fi
    rt_stop_dir "$d"
  done
  echo "server $name did not start; log:" >&2
  tail -20 "$d/log" >&2
  return 1
}

rt_restart() { # name
  local d="$RT_ROOT/$1"
  rt_stop_dir "$d"
  rt_spawn "$d"
  rt_ready "$(cat "$d/port")"
}

rt_stop() { rt_stop_dir "$RT_ROOT/$1"; }

rt_cluster() { # name n: up to 3 tries (another process may take a port meanwhile)
  local try k
  for try in 1 2 3; do
    rt_cluster_once "$@" && return 0
    for k in $(seq 1 "$2"); do rt_stop_dir "$RT_ROOT/$1$k"; rm -rf "$RT_ROOT/$1$k"; done
  done
  return 1
}

rt_cluster_once() { # name n
  local name=$1 n=$2 base ok_ports k peers="" d
  for _ in $(seq 30); do
    base=$(rt_pick_port) || return 1
    ok_ports=1
    for k in $(seq 0 $((n - 1))); do
      rt_port_free $((base + k)) && rt_port_free $((base + k + 10000)) || { ok_ports=0; break; }
    done
    [ $ok_ports = 1 ] && break
  done
  [ $ok_ports = 1 ] || return 1
  for k in $(seq 1 "$n"); do peers+="${peers:+,}$k=127.0.0.1:$((base + k - 1))"; done
  RT_PORTS=""
  for k in $(seq 1 "$n"); do
    d="$RT_ROOT/$name$k"
    mkdir -p "$d/data"
    echo $((base + k - 1)) >"$d/port"
    printf '%s\n' --node-id "$k" --cluster-secret rt-secret --initial-cluster "$peers" >"$d/args"
    rt_spawn "$d"
    RT_PORTS+="${RT_PORTS:+ }$((base + k - 1))"
  done
  for k in $(seq 1 "$n"); do
    rt_ready $((base + k - 1)) || {
      echo "cluster node $k did not serve reads; log:" >&2
      tail -20 "$RT_ROOT/$name$k/log" >&2
      return 1
    }
  done
}

rt_cleanup() {
  local d
  for d in "$RT_ROOT"/*/; do [ -f "$d/pid" ] && rt_stop_dir "${d%/}"; done
  [ -n "${KEEP:-}" ] || rm -rf "$RT_ROOT"
}

# npm ci only when node_modules does not match package-lock.json (npm writes its own copy
# of the lock to node_modules/.package-lock.json); flock serialises concurrent suites.
rt_npm_ready() {
  command -v npm >/dev/null || { echo "npm is not installed (scripts/deps.sh)"; return 1; }
  local rc=0
  (
    flock -w 300 9 || exit 1
    node -e '
      const fs = require("fs");
      const a = JSON.parse(fs.readFileSync(process.argv[1] + "/package-lock.json"));
      const b = JSON.parse(fs.readFileSync(process.argv[1] + "/node_modules/.package-lock.json"));
      for (const [k, v] of Object.entries(a.packages))
        if (k && (!b.packages[k] || b.packages[k].version !== v.version)) process.exit(1);
    ' "$RT_HERE" 2>/dev/null && exit 0
    cd "$RT_HERE" && timeout 300 npm ci --no-audit --no-fund --prefer-offline
  ) 9>"/tmp/raftconf-redis-tests-npm.lock" || rc=1
  return $rc
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then # executed: bash lib.sh restart DIR
  case "${1:-}" in
    restart) d=$2; rt_stop_dir "$d"; rt_spawn "$d"; rt_ready "$(cat "$d/port")"; exit $? ;;
    *) echo "usage: bash redis-tests/lib.sh restart DIR" >&2; exit 2 ;;
  esac
else
  RT_ROOT=$(mktemp -d /tmp/rc-rt-XXXXXX)
  trap rt_cleanup EXIT
  trap 'exit 130' INT TERM
  command -v redis-cli >/dev/null || { echo "redis-cli is not installed (scripts/deps.sh)"; }
  [ -x "$RT_BIN" ] || echo "no server binary at $RT_BIN (make first)"
fi
