#!/usr/bin/env bash
# Run a local raftconf cluster on 127.0.0.1 for trying it out.
#
#   scripts/local-cluster.sh start N        start N nodes (default 3), client ports P..P+N-1
#   scripts/local-cluster.sh status         pid, port, role, leader of every node
#   scripts/local-cluster.sh stop           SIGTERM every node (by its pid file), then wait
#   scripts/local-cluster.sh start-node K   (re)start node K alone with its existing data
#   scripts/local-cluster.sh stop-node K    SIGTERM node K (a leader hands over first)
#   scripts/local-cluster.sh kill-node K    SIGKILL node K (crash test)
#   scripts/local-cluster.sh add-node       start one more node and add it as a learner
#                                           (CFG.CLUSTER PROMOTE K makes it a voter)
#
# Everything lives under $CLUSTER_DIR (default ./cluster-data): nodeK/data (the store),
# nodeK/server.log, nodeK/pid, nodeK/port, and the shared secret in ./cluster-data/secret.
# Client ports start at $BASE_PORT (default 7001; the next free block of N ports, whose
# cluster ports +10000 are free too, is used when it is taken). Processes are stopped by
# the PIDs in their pid files only, after checking that the PID is still a raftconf-server.
# The binary is $RAFTCONF_BIN, default bin/raftconf-server (run `make` first).
set -euo pipefail

DIR=${CLUSTER_DIR:-./cluster-data}
BIN=${RAFTCONF_BIN:-bin/raftconf-server}
BASE_PORT=${BASE_PORT:-7001}

die() { echo "local-cluster: $*" >&2; exit 1; }

port_free() { # port -> 0 when nothing listens on 127.0.0.1:port
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

node_pid() { # k -> the pid if that process is alive and is a raftconf-server
  local f="$DIR/node$1/pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q raftconf-server || return 1
  echo "$pid"
}

alive() { # pid -> running (an exited process not yet reaped, state Z, counts as gone)
  kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

nodes() { # every node number that has a directory, in order
  local d
  for d in "$DIR"/node*; do
    [ -d "$d" ] && basename "$d" | sed 's/^node//'
  done | sort -n
}

pick_base() { # n -> first base port with n free client ports and their cluster ports
  local n=$1 base=$BASE_PORT i ok
  for _ in $(seq 1 50); do
    ok=1
    for i in $(seq 0 $((n - 1))); do
      if ! port_free $((base + i)) || ! port_free $((base + i + 10000)); then ok=0; break; fi
    done
    [ $ok = 1 ] && { echo "$base"; return 0; }
    base=$((base + 100))
  done
  die "no free block of $n ports found from $BASE_PORT"
}

start_node() { # k
  local k=$1 nd="$DIR/node$1" pid port
  [ -f "$nd/port" ] || die "node $k was never created (use: start N)"
  if pid=$(node_pid "$k"); then echo "node $k already running (pid $pid)"; return 0; fi
  port=$(cat "$nd/port")
  port_free "$port" || die "port $port (node $k) is taken by another process"
  mkdir -p "$nd/data"
  "$BIN" --node-id "$k" --port "$port" --dir "$nd/data" \
    --cluster-secret "$(cat "$DIR/secret")" --initial-cluster "$(cat "$DIR/initial-cluster")" \
    --logfile "$nd/server.log" </dev/null >>"$nd/server.log" 2>&1 &
  echo $! >"$nd/pid"
  echo "node $k: pid $!, redis-cli -p $port"
}

wait_up() { # k -> wait until node k answers PING (5 s)
  local port; port=$(cat "$DIR/node$1/port")
  for _ in $(seq 1 50); do
    if command -v redis-cli >/dev/null && redis-cli -p "$port" PING >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "node $1 does not answer yet; see $DIR/node$1/server.log" >&2
}

cmd_start() {
  local n=${1:-3} base k spec=""
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 9 ] || die "N must be 1..9"
  [ -x "$BIN" ] || die "$BIN not found; run make (or set RAFTCONF_BIN)"
  for k in $(nodes); do
    node_pid "$k" >/dev/null && die "a cluster is running in $DIR; stop it first"
  done
  if [ -f "$DIR/initial-cluster" ]; then
    echo "reusing the existing cluster in $DIR (its data and ports; rm -rf $DIR for a new one)"
  else
    mkdir -p "$DIR"
    base=$(pick_base "$n")
    for k in $(seq 1 "$n"); do
      mkdir -p "$DIR/node$k"
      echo $((base + k - 1)) >"$DIR/node$k/port"
      spec="$spec${spec:+,}$k=127.0.0.1:$((base + k - 1))"
    done
    echo "$spec" >"$DIR/initial-cluster"
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/secret"
    chmod 600 "$DIR/secret"
  fi
  for k in $(nodes); do start_node "$k"; done
  for k in $(nodes); do wait_up "$k"; done
}

cmd_status() {
  local k pid port role
  for k in $(nodes); do
    port=$(cat "$DIR/node$k/port" 2>/dev/null || echo "?")
    if pid=$(node_pid "$k"); then
      role=$(redis-cli -p "$port" INFO raft 2>/dev/null | tr -d '\r' |
             awk -F: '$1=="role"{r=$2} $1=="leader"{l=$2} $1=="term"{t=$2}
                      END{print r" (leader "l", term "t")"}') || true
      echo "node $k: running, pid $pid, port $port, $role"
    else
      echo "node $k: stopped, port $port"
    fi
  done
}

stop_node() { # k signal
  local k=$1 sig=$2 pid
  pid=$(node_pid "$k") || { rm -f "$DIR/node$k/pid"; return 0; }
  kill "-$sig" "$pid"
  for _ in $(seq 1 100); do
    alive "$pid" || break
    sleep 0.05
  done
  if alive "$pid"; then
    echo "node $k (pid $pid) still running after 5 s; sending SIGKILL" >&2
    kill -KILL "$pid"
  fi
  rm -f "$DIR/node$k/pid"
  echo "node $k stopped (pid $pid, SIG$sig)"
}

cmd_add_node() { # start node K = highest + 1 with the founding list, then ADD it
  local k last port leader_port="" p role
  last=$(nodes | tail -1); [ -n "$last" ] || die "no cluster in $DIR"
  k=$((last + 1)); [ "$k" -le 9 ] || die "at most 9 nodes"
  port=$(( $(cat "$DIR/node$last/port") + 1 ))
  port_free "$port" && port_free $((port + 10000)) || die "port $port or $((port + 10000)) taken"
  mkdir -p "$DIR/node$k"; echo "$port" >"$DIR/node$k/port"
  start_node "$k"; wait_up "$k"
  for p in $(for j in $(nodes); do cat "$DIR/node$j/port"; done); do
    role=$(redis-cli -p "$p" INFO raft 2>/dev/null | tr -d '\r' |
           awk -F: '$1=="role"{print $2}') || true
    [ "$role" = leader ] && leader_port=$p && break
  done
  [ -n "${leader_port:-}" ] ||
    die "no leader found; add it later: CFG.CLUSTER ADD $k 127.0.0.1:$port LEARNER"
  echo "CFG.CLUSTER ADD $k 127.0.0.1:$port LEARNER on port $leader_port:" \
    "$(redis-cli -p "$leader_port" CFG.CLUSTER ADD "$k" "127.0.0.1:$port" LEARNER)"
}

case "${1:-}" in
  start) cmd_start "${2:-3}" ;;
  status) cmd_status ;;
  stop) for k in $(nodes); do stop_node "$k" TERM; done ;;
  start-node) [ -n "${2:-}" ] || die "usage: start-node K"; start_node "$2"; wait_up "$2" ;;
  stop-node) [ -n "${2:-}" ] || die "usage: stop-node K"; stop_node "$2" TERM ;;
  kill-node) [ -n "${2:-}" ] || die "usage: kill-node K"; stop_node "$2" KILL ;;
  add-node) cmd_add_node ;;
  *) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
