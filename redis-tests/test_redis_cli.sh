#!/usr/bin/env bash
# test_redis_cli.sh - redis-cli (Debian redis-tools) against raftconf-server, in the modes
# people use: one-shot commands, the interactive REPL under a pseudo-terminal (hints, HELP
# and tab completion built from our COMMAND DOCS: python/cli_pty.py), --scan --pattern,
# --pipe mass insertion of 100,000 keys, --stat, -3 (RESP3), --latency, --bigkeys.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

rt_start single || { bad start "server did not start"; rt_summary redis_cli; exit 1; }
port=$RT_PORT
cli() { timeout 20 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>&1; }
expect() { # name expected args...
  local name=$1 want=$2 got
  shift 2
  got=$(cli "$@")
  if [ "$got" == "$want" ]; then ok; else
    bad "$name" "sent: redis-cli $*" "expected: $(printf '%q' "$want")" \
      "got:      $(printf '%q' "${got:0:400}")"; fi
}
expect_has() { # name substring args...
  local name=$1 want=$2 got
  shift 2
  got=$(cli "$@")
  if [[ "$got" == *"$want"* ]]; then ok; else
    bad "$name" "sent: redis-cli $*" "expected to contain: $(printf '%q' "$want")" \
      "got: $(printf '%q' "${got:0:400}")"; fi
}

# ---- one-shot
expect ping PONG PING
expect echo "a b" ECHO "a b"
expect set OK SET /cli/k v1
expect get v1 GET /cli/k
expect get-nil '(nil)' --no-raw GET /cli/nosuch
expect_has cfg-set $'version\n1' CFG.SET /cli/cfg x
expect_has cfg-get $'value\nx' CFG.GET /cli/cfg
expect debug-log OK DEBUG LOG "a marker from redis-cli"
expect_has config-get-star $'appendonly\nyes' CONFIG GET '*'
expect client-setinfo OK CLIENT SETINFO LIB-NAME redis-cli-test
expect_has client-tracking "CLIENT TRACKING is not supported" CLIENT TRACKING on
# a transaction needs one connection: the commands go through stdin
got=$(printf 'MULTI\nSET /cli/t 1\nGET /cli/t\nEXEC\n' | cli)
if [ "$got" == $'OK\nQUEUED\nQUEUED\nOK\n1' ]; then ok; else
  bad multi-exec-stdin "sent: MULTI SET GET EXEC on stdin" "got: $(printf '%q' "$got")"; fi
expect_has cfg-watch "/cli/cfg" CFG.WATCH /cli/ FROM 0 COUNT 10

# ---- -3 (RESP3)
expect_has resp3-hello '"proto" => (integer) 3' -3 --no-raw HELLO 3
expect_has resp3-info-verbatim 'redis_version:' -3 --no-raw INFO server
expect_has resp3-cfg-get '1# "value" => "x"' -3 --no-raw CFG.GET /cli/cfg
expect_has resp3-config-map '"appendonly" => "yes"' -3 --no-raw CONFIG GET appendonly
expect resp3-nil '(nil)' -3 --no-raw GET /cli/nosuch

# ---- interactive, under a pseudo-terminal
out=$(timeout 60 /usr/bin/python3 "$here/python/cli_pty.py" "$port" 2>&1)
if [ $? -eq 0 ]; then ok; else bad interactive "$(grep -v '^ok ' <<<"$out")"; fi

# ---- --pipe: 100,000 SETs as RESP from a generator
/usr/bin/python3 - "$RT_ROOT/mass.resp" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    for i in range(100000):
        k, v = b"mass:%d" % i, b"value-%d" % i
        f.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
PY
before=$(cli DBSIZE)
got=$(timeout 120 redis-cli -h 127.0.0.1 -p "$port" --pipe <"$RT_ROOT/mass.resp" 2>&1)
if [[ "$got" == *"errors: 0, replies: 100000"* ]]; then ok; else
  bad pipe "sent: redis-cli --pipe < 100000 SETs" "got: $got"; fi
expect pipe-dbsize $((before + 100000)) DBSIZE
expect pipe-last value-99999 GET mass:99999

# ---- --scan --pattern
got=$(cli --scan --pattern 'mass:1234?' | sort | tr '\n' ' ')
want=$(for i in $(seq 12340 12349); do printf 'mass:%s ' "$i"; done)
if [ "$got" == "$want" ]; then ok; else
  bad scan-pattern "sent: redis-cli --scan --pattern 'mass:1234?'" "got: ${got:0:300}"; fi
n=$(cli --scan --pattern 'mass:*' | wc -l)
if [ "$n" -eq 100000 ]; then ok; else bad scan-all "expected 100000 mass:* keys, got $n"; fi

# ---- --stat for a few intervals (runs until stopped: timeout ends it)
# (stdbuf: redis-cli's stdout is a pipe here, and timeout's SIGTERM would lose the buffer)
got=$(timeout 2 stdbuf -oL redis-cli -h 127.0.0.1 -p "$port" --stat -i 0.4 2>&1)
lines=$(grep -cE '^[0-9]+ +[0-9.]+[BKMG]? +[0-9]+ +[0-9]+ +[0-9]+ \(\+[0-9]+\) +[0-9]+' <<<"$got")
if [[ "$got" == *"------- data ------"* ]] && [ "$lines" -ge 3 ] &&
  grep -qE "^$((before + 100000)) " <<<"$got"; then ok; else
  bad stat "redis-cli --stat: expected >= 3 sample lines with keys=$((before + 100000))" \
    "got: $(printf '%q' "${got:0:600}")"; fi

# ---- --latency: with output to a pipe it samples for the interval and prints one line,
# "min max avg samples"
got=$(timeout 20 redis-cli -h 127.0.0.1 -p "$port" --latency -i 1 2>&1)
if [[ "$got" =~ ^[0-9]+\ [0-9]+\ [0-9.]+\ ([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 5 ]; then
  ok; else
  bad latency "redis-cli --latency -i 1: expected one line 'min max avg samples'" \
    "got: $(printf '%q' "${got:0:300}")"; fi

# ---- --bigkeys
cli SET /cli/big "$(head -c 5000 /dev/zero | tr '\0' x)" >/dev/null
got=$(timeout 60 redis-cli -h 127.0.0.1 -p "$port" --bigkeys 2>&1)
if [[ "$got" == *"Biggest string found '\"/cli/big\"' has 5000 bytes"* ]] &&
  [[ "$got" == *"Sampled $((before + 100001)) keys in the keyspace!"* ]]; then ok; else
  bad bigkeys "redis-cli --bigkeys: expected /cli/big as the biggest string" \
    "got: $(printf '%q' "$(tail -c 600 <<<"$got")")"; fi

rt_summary redis_cli
