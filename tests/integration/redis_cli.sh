#!/usr/bin/env bash
# redis_cli.sh - drive a real raftconf-server with redis-cli: one-shot commands and their
# printed output, RESP3 (-3), --scan --pattern, --pipe mass insertion, -x, and commands
# piped to stdin as in an interactive session.
#
# Run from the repo root: bash tests/integration/redis_cli.sh
# The binary is $RAFTCONF_BIN (default build/raftconf-server). The server listens on
# 127.0.0.1 on a free port, uses a fresh temp dir and is stopped by its PID (trap).
# Prints "redis_cli: N passed, N failed" and exits non-zero when anything failed.
set -uo pipefail

BIN=${RAFTCONF_BIN:-build/raftconf-server}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/server.sh
. "$here/lib/server.sh"
root=$(mktemp -d /tmp/rc-cli-XXXXXX)
pid=""
port=0
passed=0
failed=0

stop_server() { srv_stop "$pid"; pid=""; }
cleanup() { srv_stop_all; rm -rf "$root"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() {
  mkdir -p "$root/data"
  srv_start "$root/server.log" "$BIN" --dir "$root/data" "$@" || return 1
  pid=$SRV_PID
  port=$SRV_PORT
}

cli() { timeout 20 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>&1; }

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; shift; printf '  %s\n' "$@"; }

# expect NAME EXPECTED-OUTPUT redis-cli-args...
expect() {
  local name=$1 want=$2 got
  shift 2
  got=$(cli "$@")
  if [ "$got" == "$want" ]; then ok; else
    bad "$name" "sent: redis-cli $*" "expected: $(printf '%q' "$want")" \
      "got:      $(printf '%q' "$got")"
  fi
}
# expect_has NAME SUBSTRING redis-cli-args...
expect_has() {
  local name=$1 want=$2 got
  shift 2
  got=$(cli "$@")
  if [[ "$got" == *"$want"* ]]; then ok; else
    bad "$name" "sent: redis-cli $*" "expected to contain: $(printf '%q' "$want")" \
      "got: $(printf '%q' "${got:0:400}")"
  fi
}

if ! command -v redis-cli >/dev/null; then echo "redis-cli not installed"; exit 1; fi
[ -x "$BIN" ] || { echo "no server binary at $BIN"; echo "redis_cli: 0 passed, 1 failed"; exit 1; }
start_server || { echo "redis_cli: 0 passed, 1 failed"; exit 1; }

# ---- one-shot commands (raw output: stdout is not a tty)
expect ping PONG PING
expect echo "hello world" ECHO "hello world"
expect set OK SET foo bar
expect get bar GET foo
expect get-quoted '"bar"' --no-raw GET foo
expect get-nil '(nil)' --no-raw GET nosuchkey
expect set-nx '(nil)' --no-raw SET foo other NX
expect set-get-old bar SET foo baz GET
expect mset OK MSET a 1 b 2 c 3
expect mget $'1\n2\n\n3' MGET a b nosuch c
expect mget-noraw $'1) "1"\n2) "2"\n3) (nil)' --no-raw MGET a b nosuch
expect exists 3 EXISTS a b c nosuch
expect del 2 DEL a b nosuch
expect unlink 1 UNLINK c
expect type string TYPE foo
expect type-none none TYPE nosuch
expect strlen 3 STRLEN foo
expect dbsize '(integer) 1' --no-raw DBSIZE
expect select0 OK SELECT 0
expect_has select1 "ERR DB index is out of range" SELECT 1
expect_has unknown "ERR unknown command 'NOSUCHCMD', with args beginning with: 'x'" NOSUCHCMD x
expect_has arity "ERR wrong number of arguments for 'get' command" GET
expect_has set-ex "ERR config keys do not expire" SET k v EX 10
expect_has flushall-off "enable-flushall" FLUSHALL
expect config-appendonly $'appendonly\nyes' CONFIG GET appendonly
expect config-save save CONFIG GET save   # value '' (no RDB snapshots); $() drops the empty line
expect_has info-server "redis_version:" INFO server
expect_has info-keyspace "db0:keys=1," INFO keyspace
expect_has info-loading "loading:0" INFO
expect client-getname-nil '(nil)' --no-raw CLIENT GETNAME
expect_has client-list "cmd=client" CLIENT LIST
got=$(cli TIME)
if [[ "$got" =~ ^[0-9]{10}$'\n'[0-9]{1,6}$ ]] && (( ${got%%$'\n'*} - $(date +%s) < 5 )); then
  ok
else
  bad time "sent: redis-cli TIME" "expected: unix seconds and microseconds" "got: $got"; fi
got=$(cli COMMAND COUNT)
if [[ "$got" =~ ^[0-9]+$ ]] && [ "$got" -ge 30 ]; then ok; else
  bad command-count "sent: redis-cli COMMAND COUNT" "expected: an integer >= 30" "got: $got"; fi

# ---- CFG.*
expect cfg-get-nil '(nil)' --no-raw CFG.GET /nope
got=$(cli CFG.SET /app/port 8080)
if [[ "$got" == revision$'\n'*$'\n'version$'\n'1$'\n'created$'\n'1 ]]; then ok; else
  bad cfg-set "sent: CFG.SET /app/port 8080" "expected: revision N version 1 created 1" \
    "got: $got"; fi
expect_has cfg-set-cas "VERSION version mismatch: current version is 1" \
  CFG.SET /app/port 1 IFVERSION 0
got=$(cli CFG.GET /app/port)
if [[ "$got" == value$'\n'8080$'\n'version$'\n'1$'\n'create_revision$'\n'* ]]; then ok; else
  bad cfg-get "sent: CFG.GET /app/port" "expected: value 8080 version 1 create_revision ..." \
    "got: $got"; fi
expect cfg-del 1 CFG.DEL /app/port IFVERSION 1
expect cfg-del-gone 0 CFG.DEL /app/port

# ---- RESP3 (-3)
got=$(cli -3 --no-raw HELLO 3)
if [[ "$got" == *'"proto" => (integer) 3'* ]]; then ok; else
  bad resp3-hello "sent: redis-cli -3 HELLO 3" "expected a map with proto => 3" "got: $got"; fi
expect resp3-nil '(nil)' -3 --no-raw GET nosuchkey
expect resp3-get '"baz"' -3 --no-raw GET foo
cli CFG.SET /r3/k v >/dev/null
got=$(cli -3 --no-raw CFG.GET /r3/k)
if [[ "$got" == '1# "value" => "v"'$'\n''2# "version" => (integer) 1'* ]]; then ok; else
  bad resp3-cfg-get "sent: redis-cli -3 CFG.GET /r3/k" \
    "expected a map: 1# \"value\" => \"v\" ..." "got: $got"; fi
got=$(cli -3 --no-raw CONFIG GET appendonly)
if [[ "$got" == '1# "appendonly" => "yes"' ]]; then ok; else
  bad resp3-config "sent: redis-cli -3 CONFIG GET appendonly" \
    "expected: 1# \"appendonly\" => \"yes\"" "got: $got"; fi

# ---- --scan --pattern
for i in $(seq 1 150); do echo "SET user:$i v$i"; done | cli >/dev/null
for i in $(seq 1 20); do echo "SET other:$i v"; done | cli >/dev/null
got=$(cli --scan --pattern 'user:*' | sort)
want=$(for i in $(seq 1 150); do echo "user:$i"; done | sort)
if [ "$got" == "$want" ]; then ok; else
  bad scan-pattern "sent: redis-cli --scan --pattern 'user:*'" "expected 150 user:* keys" \
    "got $(wc -l <<<"$got") lines: ${got:0:200}"; fi
got=$(cli --scan --pattern 'user:1?' | sort | tr '\n' ' ')
want=$(for i in $(seq 10 19); do printf 'user:%s ' "$i"; done)
if [ "$got" == "$want" ]; then ok; else
  bad scan-pattern2 "sent: redis-cli --scan --pattern 'user:1?'" "got: $got"; fi

# ---- --pipe mass insertion (RESP protocol from a generator)
before=$(cli DBSIZE)
gen() {
  local i
  for ((i = 0; i < 20000; i++)); do
    printf '*3\r\n$3\r\nSET\r\n$%d\r\nmass:%d\r\n$%d\r\nvalue-%d\r\n' \
      $((5 + ${#i})) "$i" $((6 + ${#i})) "$i"
  done
}
gen >"$root/mass.resp"
got=$(timeout 120 redis-cli -h 127.0.0.1 -p "$port" --pipe <"$root/mass.resp" 2>&1)
if [[ "$got" == *"errors: 0, replies: 20000"* ]]; then ok; else
  bad pipe "sent: redis-cli --pipe < 20000 SETs" "expected: errors: 0, replies: 20000" \
    "got: $got"; fi
expect pipe-dbsize $((before + 20000)) DBSIZE
expect pipe-get value-19999 GET mass:19999
expect pipe-get0 value-0 GET mass:0

# ---- -x (value from stdin), 100 KB
head -c 100000 /dev/zero | tr '\0' 'x' >"$root/big"
got=$(cli -x SET bigval <"$root/big")
if [ "$got" == OK ]; then ok; else
  bad x-set "sent: redis-cli -x SET bigval < 100000 bytes" "got: $got"; fi
expect x-strlen 100000 STRLEN bigval

# ---- interactive style: commands on stdin
got=$(printf 'SET ia 1\nGET ia\nEXISTS ia\nDEL ia\nGET ia\nPING\n' | cli)
if [ "$got" == $'OK\n1\n1\n1\n\nPONG' ]; then ok; else
  bad stdin-session "sent: SET/GET/EXISTS/DEL/GET/PING on stdin" "expected: OK 1 1 1 <empty> PONG" \
    "got: $(printf '%q' "$got")"; fi
got=$(printf 'HELLO 3\nCFG.SET /i/k v\nCFG.GET /i/k\n' | cli --no-raw)
if [[ "$got" == *'"value" => "v"'* ]]; then ok; else
  bad stdin-resp3 "sent: HELLO 3, CFG.SET, CFG.GET on stdin" "expected a RESP3 map" "got: $got"; fi

# ---- restart: data is still there (clean shutdown by PID)
stop_server
start_server || { bad restart "server did not restart on the same dir"; }
if [ -n "$pid" ]; then
  expect restart-get value-12345 GET mass:12345
  expect restart-get2 baz GET foo
fi

echo "redis_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
