#!/usr/bin/env bash
# run.sh - one nemesis scenario on a real 3-node raftconf cluster (Jepsen-style).
#
#   tests/fault/nemesis/run.sh --scenario NAME --duration-s N [--seed S] [--nemeses "a b"]
#                              [--list]
#
# Starts 3 servers, each in its own network namespace joined by a bridge in a namespace of
# its own (lib.sh), runs the client workload ($BUILD/nemesis-workload) from a client
# namespace, applies the scenario's faults on a schedule drawn from the seed (faults.sh),
# heals everything, waits until every node answers CFG.HEALTH +OK, lets the workload do its
# final reads, and checks the history with $BUILD/lincheck. Prints a report: operations by
# outcome, faults with times, the verdict, and the command that reproduces the run.
#
# Exit: 0 linearizable and healthy at the end, 1 NOT linearizable (or acknowledged writes
# lost), 2 unknown or the harness could not run the scenario.
#
# Environment: RAFTCONF_BIN (server, default build/raftconf-server), RAFTCONF_BUILD (where
# nemesis-workload, lincheck, nemdelay, nemfs.so, tcpproxy are; default build), NEM_KEEP=1
# (keep $NEM_ROOT), NEM_FORCE_PROXY=1 (use the 127.0.0.1 + tcpproxy fallback),
# NEM_WORKLOAD / NEM_LINCHECK (other binaries), NEM_CLIENTS, NEM_KEYS, NEM_TICK_MS and
# NEM_ELECTION_TICKS (server timers; default the server's own, 50 ms x 5),
# NEM_SNAPSHOT_ENTRIES (entries between log compactions; default the server's 10000).
# Needs root (namespaces, nftables, mounts).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../../.." && pwd)
source "$HERE/lib.sh"
source "$HERE/faults.sh"

# scenario -> nemeses (faults.sh nem_f_<name>, dashes as underscores) and the features the
# nodes are started with (faketime: libfaketime preloaded; diskshim: nemfs.so preloaded;
# fulldisk: node 1's data dir on a private tmpfs).
declare -A SCEN=(
    [partition]="partition-leader partition-split partition-bridge partition-asym"
    [net]="loss dup delay"
    [kill]="kill kill member"
    [pause]="pause"
    [clock]="clock-jump clock-skew"
    [clock-jump]="clock-jump"
    [member]="member member loss pause"
    [disk-loss]="disk-crash disk-crash disk-crash-all disk-eio disk-freeze disk-full"
    [disk]="disk-eio disk-freeze disk-full"
    [mix]="partition-leader partition-split partition-asym loss dup delay kill pause clock-jump
           clock-skew disk-crash disk-eio disk-freeze disk-full"
)
declare -A FEAT=([clock]=faketime [clock-jump]=faketime [disk-loss]="diskshim fulldisk" [disk]="diskshim fulldisk"
                 [mix]="faketime diskshim fulldisk")
SCEN_ORDER="partition net kill pause clock clock-jump member disk-loss disk mix"

scenario="" duration=60 seed="" only=""
while [ $# -gt 0 ]; do
    case "$1" in
    --scenario) scenario=$2; shift 2 ;;
    --duration-s) duration=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --nemeses) only=$2; shift 2 ;;   # replaces the scenario's list (same node features)
    --list) echo "$SCEN_ORDER"; exit 0 ;;
    *) echo "usage: run.sh --scenario {${SCEN_ORDER// /|}} --duration-s N [--seed S]" >&2; exit 2 ;;
    esac
done
[ -n "${SCEN[$scenario]:-}" ] || nem_die "unknown scenario '$scenario' (one of: $SCEN_ORDER)"
[ "$duration" -ge 20 ] 2>/dev/null || nem_die "--duration-s must be >= 20"
[ -n "$seed" ] || seed=$(( $(date +%s%N) % 1000000 ))
[ "$(id -u)" = 0 ] || { echo "nemesis: needs root (namespaces, nftables); skipped"; exit 2; }

NEM_BUILD=${RAFTCONF_BUILD:-$TOP/build}
NEM_BIN=${RAFTCONF_BIN:-$NEM_BUILD/raftconf-server}
WORKLOAD=${NEM_WORKLOAD:-$NEM_BUILD/nemesis-workload}
LINCHECK=${NEM_LINCHECK:-$NEM_BUILD/lincheck}
NEM_LIBFAKETIME=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -1)
for f in "$NEM_BIN" "$WORKLOAD" "$LINCHECK" "$NEM_BUILD/nemdelay" "$NEM_BUILD/nemfs.so"; do
    [ -e "$f" ] || nem_die "missing $f (make all)"
done
# The server's default timers (50 ms x 5: election timeout 250-500 ms), as users run it.
NEM_TICK_MS=${NEM_TICK_MS:-50} NEM_ELECTION_TICKS=${NEM_ELECTION_TICKS:-5}
# Entries between log compactions (the server's default is 10000): lower, a node that was
# cut off catches up by snapshot more often, so the install path is under fault too.
NEM_SNAPSHOT_ENTRIES=${NEM_SNAPSHOT_ENTRIES:-10000}
NEM_REQUEST_TIMEOUT_MS=2000
CLIENT_TIMEOUT_MS=4000
NEM_RS=$(( seed * 2654435761 + 12345 ))
NEM_T0_MS=$(( $(date +%s%N) / 1000000 ))
NEM_ID=$(printf '%02x%04x' $(( RANDOM % 256 )) $(( $$ % 65536 )))
NEM_ROOT=/tmp/rcnem-$NEM_ID
NEM_SECRET=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
NEM_AUX_PIDS=() NEM_NETNS=() HOLDER=() PID=() PAUSED=() DELAYED=()
NEM_SELF_EXITS=0 NEM_RESTARTS=0 NEM_NEXT_ID=4
declare -A NEM_CRASHY=()
verdict_rc=2
mkdir -p "$NEM_ROOT"

on_exit() {
    nem_teardown
    if [ "${NEM_KEEP:-0}" = 1 ] || [ "$verdict_rc" != 0 ]; then
        echo "nemesis: logs kept in $NEM_ROOT"
    else
        rm -rf "$NEM_ROOT"
    fi
}
trap on_exit EXIT
trap 'exit 2' INT TERM

for f in ${FEAT[$scenario]:-}; do
    case $f in
    faketime) NEM_FAKETIME=1; [ -n "$NEM_LIBFAKETIME" ] || nem_die "libfaketime not installed" ;;
    diskshim) NEM_DISKSHIM=1 ;;
    fulldisk) NEM_FULLDISK=1 ;;
    esac
done

# ---------------------------------------------------------------- hosts
if [ "${NEM_FORCE_PROXY:-0}" = 1 ]; then
    NETMODE=proxy; why="NEM_FORCE_PROXY=1"
elif nem_can_netns; then
    NETMODE=netns
else
    NETMODE=proxy; why="cannot create network namespaces here"
fi
echo "nemesis: scenario=$scenario duration=${duration}s seed=$seed run=$NEM_ID root=$NEM_ROOT"
if [ "$NETMODE" = proxy ]; then
    echo "nemesis: FALLBACK ($why): nodes on 127.0.0.1 with tcpproxy between peers;" \
         "partitions by the proxy, no packet loss/duplication/NFQUEUE delay (proxy hold instead)"
fi
nem_setup_net || nem_die "network setup failed"
if [ "$NETMODE" = netns ]; then
    echo "nemesis: hosts: 3 node namespaces + client namespace on bridge ${SUB}.0/24 (namespace $BRNS)"
    if ip netns exec "$BRNS" tc qdisc add dev br0 root netem delay 1ms 2>/dev/null; then
        ip netns exec "$BRNS" tc qdisc del dev br0 root 2>/dev/null
        echo "nemesis: netem is available (delay still uses NFQUEUE, for one code path)"
    else
        echo "nemesis: netem unavailable (tc qdisc add ... netem fails); delay/reorder via NFQUEUE (nemdelay)"
    fi
fi

NEMESES=$(tr -s ' \n' '  ' <<<"${only:-${SCEN[$scenario]}}" | sed 's/^ *//; s/ *$//')
for f in $NEMESES; do
    declare -F "nem_f_${f//-/_}" >/dev/null || nem_die "unknown nemesis '$f'"
done
if [ "$NETMODE" = proxy ]; then
    NEMESES=$(tr ' ' '\n' <<<"$NEMESES" | sed 's/^delay$/hold/' | grep -vx 'loss\|dup\|member' | paste -sd' ')
    [ -n "$NEMESES" ] || NEMESES=hold
fi

for i in $(seq 1 $NEM_NODES); do
    ID[$i]=$i
    DIR[$i]=$NEM_ROOT/n$i
    PAUSED[$i]=0
    mkdir -p "${DIR[$i]}"
done
if [ "${NEM_FULLDISK:-0}" = 1 ]; then
    NEM_FULL_NODE=1
    unshare -m --propagation private sleep 100000 &
    HOLDER[1]=$!
    sleep 0.1
    nsenter -t "${HOLDER[1]}" -m mount -t tmpfs -o size=96m nemfull "${DIR[1]}" ||
        nem_die "cannot mount a private tmpfs for node 1"
    echo "nemesis: node 1's data dir is a 96 MiB tmpfs in a private mount namespace"
fi

for i in $(seq 1 $NEM_NODES); do nem_start_node "$i"; done
for i in $(seq 1 $NEM_NODES); do  # the preloads must really be in the servers
    sleep 0.1
    maps=$(cat "/proc/${PID[$i]}/maps" 2>/dev/null)
    [ "${NEM_FAKETIME:-0}" = 1 ] && ! grep -q libfaketime <<<"$maps" && nem_die "libfaketime not loaded in node $i"
    [ "${NEM_DISKSHIM:-0}" = 1 ] && ! grep -q nemfs.so <<<"$maps" && nem_die "nemfs.so not loaded in node $i"
done
leader=$(nem_wait_leader 20) || { tail -n 20 "$NEM_ROOT"/n*.log; nem_die "no leader in 20 s"; }
nem_wait_healthy 20 >/dev/null || nem_die "cluster not healthy at start"
et_ms=$((NEM_TICK_MS * NEM_ELECTION_TICKS))
nem_log "cluster up: leader node $leader; election timeout $et_ms-$((2 * et_ms)) ms," \
    "request timeout ${NEM_REQUEST_TIMEOUT_MS} ms"

# ---------------------------------------------------------------- workload + nemesis
nodes_arg=$(for i in $(seq 1 $NEM_NODES); do echo "${ADDR[$i]}:${PORT[$i]}"; done | paste -sd,)
HISTORY=$NEM_ROOT/history.jsonl
wl_args=(--nodes "$nodes_arg" --duration-s "$duration" --clients "${NEM_CLIENTS:-6}"
         --keys "${NEM_KEYS:-8}" --seed "$seed" --history "$HISTORY"
         --timeout-ms "$CLIENT_TIMEOUT_MS" --watch --txn --final)
"${CLI_PREFIX[@]}" "$WORKLOAD" "${wl_args[@]}" >"$NEM_ROOT/workload.log" 2>&1 &
NEM_WORKLOAD_PID=$!
wl_start=$SECONDS

# Faults from 3 s in until the recovery period: max(12 s, duration / 5) before the end.
recover_s=$(( duration / 5 > 12 ? duration / 5 : 12 ))
fault_end=$(( wl_start + duration - recover_s ))
read -r -a nemeses <<<"$NEMESES"
n_faults=0
sleep 3
while :; do
    nem_rnd ${#nemeses[@]}; fault=${nemeses[$R]}
    nem_rnd_range 2 8; window=$R
    nem_rnd_range 1 4; quiet=$R
    [ $(( SECONDS + window )) -le $fault_end ] || break
    "nem_f_${fault//-/_}"
    n_faults=$((n_faults + 1))
    sleep "$window"
    nem_heal
    nem_log "heal"
    sleep "$quiet"
    kill -0 "$NEM_WORKLOAD_PID" 2>/dev/null || break
done
nem_heal_all
nem_log "all faults healed; waiting for every node to be healthy"
healthy=1
nem_wait_healthy $(( recover_s + 20 )) || healthy=0
if [ $healthy = 1 ]; then nem_log "cluster healthy (leader node $(nem_leader || echo '?'))"
else
    nem_log "cluster NOT healthy after healing"
    for i in $(seq 1 $NEM_NODES); do # what each node thinks, for the report
        echo "  node $i INFO raft: $(nem_cli "$i" INFO raft | tr -d '\r' | grep -v '^#' |
            grep -E '^(role|term|leader|commit_index|applied_index|last_index|meta_[a-z_]*|healthy|unhealthy_reason|peer[0-9]+|peer_(msgs_[a-z]*|dial[a-z_]*|conns_in)):' | tr '\n' ' ')"
    done | tee -a "$NEM_ROOT/events.log"
fi

wl_deadline=$(( wl_start + duration + 90 ))
while kill -0 "$NEM_WORKLOAD_PID" 2>/dev/null && [ $SECONDS -lt $wl_deadline ]; do sleep 0.5; done
if kill -0 "$NEM_WORKLOAD_PID" 2>/dev/null; then
    nem_log "workload did not finish in time; killed"
    kill -KILL "$NEM_WORKLOAD_PID"
fi
wait "$NEM_WORKLOAD_PID"; wl_rc=$?
NEM_WORKLOAD_PID=
nem_log "workload exited with $wl_rc: $(tail -n 1 "$NEM_ROOT/workload.log")"

# ---------------------------------------------------------------- check + report
"$LINCHECK" "$HISTORY" >"$NEM_ROOT/lincheck.out" 2>"$NEM_ROOT/lincheck.err"; lc_rc=$?
for i in $(seq 1 $NEM_NODES); do nem_reap_if_dead "$i" >/dev/null || true; done

echo
echo "==================== nemesis report: $scenario ===================="
echo "seed:       $seed    duration: ${duration}s    network: $NETMODE    run: $NEM_ID"
echo "nemeses:    $NEMESES"
echo "faults:     $n_faults applied ($NEM_RESTARTS restarts, $NEM_SELF_EXITS nodes exited by themselves)"
grep -E 'FAULT|lost|REMOVE|ADD|PROMOTE|exited by itself|skipped|INFO raft' "$NEM_ROOT/events.log" | sed 's/^/  /'
echo "operations (f outcome count):"
if [ -s "$HISTORY" ]; then
    jq -r '[.f // "?", .r // "?"] | join(" ")' "$HISTORY" 2>/dev/null | sort | uniq -c |
        awk '{printf "  %-8s %-8s %d\n", $2, $3, $1}'
    echo "  total    $(wc -l <"$HISTORY")"
else
    echo "  (no history written)"
fi
echo "lincheck:   $(grep -a '^lincheck:' "$NEM_ROOT/lincheck.out" | tail -1)" \
     "($(grep -a -o 'checked in.*' "$NEM_ROOT/lincheck.err" | tail -1))"
grep -a -E '^(keys|watch|acked|lost)' "$NEM_ROOT/lincheck.out" | head -5 | sed 's/^/            /'
if [ $lc_rc -ne 0 ]; then sed -n '1,40p' "$NEM_ROOT/lincheck.out" | sed 's/^/  | /'; fi
case $lc_rc in
0) verdict="linearizable" ;;
1) verdict="NOT LINEARIZABLE" ;;
*) verdict="UNKNOWN (lincheck exit $lc_rc)" ;;
esac
[ $healthy = 1 ] || verdict="$verdict; cluster NOT healthy after healing"
[ $wl_rc = 0 ] || verdict="$verdict; workload exit $wl_rc"
echo "verdict:    $verdict"
echo "reproduce:  ${NEM_FORCE_PROXY:+NEM_FORCE_PROXY=1 }RAFTCONF_BIN=$NEM_BIN RAFTCONF_BUILD=$NEM_BUILD" \
     "$HERE/run.sh --scenario $scenario --duration-s $duration --seed $seed${only:+ --nemeses \"$only\"}"
echo "==================================================================="
if [ $lc_rc = 1 ]; then verdict_rc=1
elif [ $lc_rc = 0 ] && [ $healthy = 1 ] && [ $wl_rc = 0 ]; then verdict_rc=0
else verdict_rc=2; fi
exit $verdict_rc
