# lib.sh - test hosts for the nemesis suite: network namespaces, a bridge, nodes, clients.
# Sourced by run.sh (bash). Everything here is per run: names carry $NEM_ID, state lives in
# $NEM_ROOT, and nem_teardown undoes all of it (called from run.sh's EXIT trap).
#
# Topology (NETMODE=netns):
#   rcnem-<id>-br   a namespace holding bridge br0 and one veth end per host (v1 v2 v3 vc)
#   rcnem-<id>-n<i> node i: eth0 = $SUB.<i>/24, runs raftconf-server bound to that address
#   rcnem-<id>-cl   the workload and every control command (redis-cli): eth0 = $SUB.100
# The addresses exist only inside those namespaces; the root namespace gets no interface,
# no route and no firewall rule, and nothing here sends from it to them.
#
# Fallback (NETMODE=proxy, where namespaces cannot be created): nodes on 127.0.0.1 with
# their own ports, peer links through tests/fault/tcpproxy (one route per ordered pair),
# partitions done by the proxy; loss, duplication and NFQUEUE delay are not available.
#
# Invariants: every process started here is a child of the harness, recorded by PID,
# stopped by PID and reaped with wait; every control command has a timeout.

NEM_CPORT_OFFSET=10000
NEM_NODES=3
CLIP=100

nem_log() {
    local line
    line=$(printf '[%6.1fs] %s' "$(nem_elapsed)" "$*")
    echo "$line"
    [ -n "${NEM_ROOT:-}" ] && echo "$line" >>"$NEM_ROOT/events.log"
}
nem_elapsed() { echo "$(( $(date +%s%N) / 1000000 - NEM_T0_MS ))" | awk '{printf "%.1f", $1/1000}'; }
nem_die() { echo "nemesis: $*" >&2; exit 2; }

# ---------------------------------------------------------------- seeded random numbers

# R <- uniform in [0, $1). Never call in a subshell (the state must advance here).
nem_rnd() {
    NEM_RS=$(( (NEM_RS * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff ))
    R=$(( (NEM_RS >> 24) % $1 ))
}
# R <- uniform in [$1, $2]
nem_rnd_range() { nem_rnd $(( $2 - $1 + 1 )); R=$(( R + $1 )); }

# ---------------------------------------------------------------- network

nem_can_netns() {
    local probe="rcnem-$NEM_ID-probe"
    ip netns add "$probe" 2>/dev/null || return 1
    ip -n "$probe" link add b0 type bridge 2>/dev/null
    local ok=$?
    ip netns del "$probe" 2>/dev/null
    return $ok
}

# One host: namespace $1, veth end v$2 in the bridge namespace, address $SUB.$3.
nem_add_host() {
    local ns=$1 port=$2 addr=$3
    ip netns add "$ns" || return 1
    NEM_NETNS+=("$ns")
    ip -n "$ns" link add eth0 type veth peer name "v$port" netns "$BRNS" || return 1
    ip -n "$ns" addr add "$SUB.$addr/24" dev eth0 || return 1
    ip -n "$ns" link set lo up && ip -n "$ns" link set eth0 up || return 1
    ip -n "$BRNS" link set "v$port" master br0 && ip -n "$BRNS" link set "v$port" up
}

# Per-node nftables table for partitions (input/output chains, empty = no fault).
nem_node_fw_init() {
    ip netns exec "${NS[$1]}" nft -f - <<EOF
table inet rcnem {
  chain input { type filter hook input priority 0; policy accept; }
  chain output { type filter hook output priority 0; policy accept; }
}
EOF
}

# Bridge tables: loss on forwarded peer traffic (bridge family), duplication at the ingress
# of each node's bridge port (netdev family: a copy is sent straight out of the target's
# port, the original goes through the bridge).
nem_bridge_fw_init() {
    local rules i
    rules="table bridge rcnem {"$'\n'"chain nemfwd { type filter hook forward priority 0; policy accept; }"$'\n'"}"
    for i in $(seq 1 $NEM_NODES); do
        rules+=$'\n'"table netdev rcnem$i {"$'\n'"chain nemin { type filter hook ingress device v$i priority 0; policy accept; }"$'\n'"}"
    done
    ip netns exec "$BRNS" nft -f - <<<"$rules"
}

nem_setup_net() {
    NEM_NETNS=()
    if [ "$NETMODE" = proxy ]; then
        for i in $(seq 1 $NEM_NODES); do
            ADDR[$i]=127.0.0.1
            PORT[$i]=$(nem_free_port) || return 1
        done
        nem_proxy_start
        return
    fi
    SUB="10.213.$(( 16#${NEM_ID:0:2} % 250 + 1 ))"
    BRNS="rcnem-$NEM_ID-br"
    CLNS="rcnem-$NEM_ID-cl"
    ip netns add "$BRNS" || return 1
    NEM_NETNS+=("$BRNS")
    ip -n "$BRNS" link add br0 type bridge && ip -n "$BRNS" link set br0 up &&
        ip -n "$BRNS" link set lo up || return 1
    for i in $(seq 1 $NEM_NODES); do
        NS[$i]="rcnem-$NEM_ID-n$i"
        ADDR[$i]="$SUB.$i"
        PORT[$i]=6379
        nem_add_host "${NS[$i]}" "$i" "$i" || return 1
        nem_node_fw_init "$i" || return 1
    done
    nem_add_host "$CLNS" c "$CLIP" || return 1
    nem_bridge_fw_init || return 1
    CLI_PREFIX=(ip netns exec "$CLNS")
}

nem_free_port() {
    /usr/bin/python3 - <<'EOF'
import socket
while True:
    a = socket.socket(); a.bind(('127.0.0.1', 0)); p = a.getsockname()[1]
    if p + 10000 > 65535: a.close(); continue
    b = socket.socket()
    try:
        b.bind(('127.0.0.1', p + 10000)); print(p); break
    except OSError: pass
    finally: a.close(); b.close()
EOF
}

# Fallback: tcpproxy with a route for every ordered pair (i, j): node i reaches j's cluster
# port through route ROUTE[i,j] listening on RPORT[i,j].
nem_proxy_start() {
    local args=() r=0
    declare -gA ROUTE RPORT
    for i in $(seq 1 $NEM_NODES); do for j in $(seq 1 $NEM_NODES); do
        [ "$i" = "$j" ] && continue
        args+=("0:$(( PORT[j] + NEM_CPORT_OFFSET ))"); ROUTE[$i,$j]=$r; r=$((r + 1))
    done; done
    coproc NEM_PROXY { exec "$NEM_BUILD/tcpproxy" "${args[@]}" 2>>"$NEM_ROOT/proxy.log"; }
    local line ports
    read -r -t 5 line <&"${NEM_PROXY[0]}" || return 1
    read -r -a ports <<<"${line#ports }"
    for i in $(seq 1 $NEM_NODES); do for j in $(seq 1 $NEM_NODES); do
        [ "$i" = "$j" ] && continue
        RPORT[$i,$j]=${ports[${ROUTE[$i,$j]}]}
    done; done
    CLI_PREFIX=()
}

nem_proxy() { # one command line; waits for ok/err
    local line
    echo "$*" >&"${NEM_PROXY[1]}" || return 1
    read -r -t 5 line <&"${NEM_PROXY[0]}" && [ "${line:0:2}" = ok ]
}

# ---------------------------------------------------------------- nodes

# --initial-cluster as node $1 sees it (through the proxy in fallback mode).
nem_initial_cluster() {
    local v=$1 out="" sep=""
    for j in $(seq 1 $NEM_NODES); do
        if [ "$NETMODE" = proxy ] && [ "$j" != "$v" ]; then
            out+="$sep$j=127.0.0.1:${PORT[$j]}@${RPORT[$v,$j]}"
        else
            out+="$sep$j=${ADDR[$j]}:${PORT[$j]}"
        fi
        sep=,
    done
    echo "$out"
}

# Start node slot $1 as a child of this shell: PID[$1] is the server itself (ip netns exec,
# nsenter and env all exec, none forks).
nem_start_node() {
    local i=$1 pre=() envs=() preload=""
    mkdir -p "${DIR[$i]}"
    [ "$NETMODE" = netns ] && pre=(ip netns exec "${NS[$i]}")
    [ -n "${HOLDER[$i]:-}" ] && pre=(nsenter -t "${HOLDER[$i]}" -m "${pre[@]}")
    if [ "${NEM_FAKETIME:-0}" = 1 ]; then
        # The spec file is re-read at every clock call (no cache), so a fault takes effect
        # at once. A restart starts again from the real clock.
        preload="$NEM_LIBFAKETIME"
        envs+=("FAKETIME_TIMESTAMP_FILE=$NEM_ROOT/ft-n$i" FAKETIME_NO_CACHE=1)
        echo "+0" >"$NEM_ROOT/ft-n$i"
        FT_OFF[$i]=0; FT_RATE[$i]=1; FT_T0[$i]=$(date +%s.%N)
    fi
    if [ "${NEM_DISKSHIM:-0}" = 1 ]; then
        mkdir -p "$NEM_ROOT/ctl-n$i"
        preload="${preload:+$preload:}$NEM_BUILD/nemfs.so"
        envs+=("NEMFS_DIR=${DIR[$i]}" "NEMFS_LOG=$NEM_ROOT/fs-n$i.log"
               "NEMFS_CTL=$NEM_ROOT/ctl-n$i")
    fi
    [ -n "$preload" ] && envs+=("LD_PRELOAD=$preload")
    local cport_args=()
    [ "$NETMODE" = proxy ] && cport_args=(--cluster-port $(( PORT[i] + NEM_CPORT_OFFSET )))
    echo "---- start $(date +%T.%N) id=${ID[$i]}" >>"$NEM_ROOT/n$i.log"
    "${pre[@]}" env "${envs[@]}" "$NEM_BIN" --bind "${ADDR[$i]}" --port "${PORT[$i]}" \
        --dir "${DIR[$i]}" --node-id "${ID[$i]}" --cluster-secret "$NEM_SECRET" \
        --initial-cluster "$(nem_initial_cluster "$i")" "${cport_args[@]}" \
        --tick-ms "$NEM_TICK_MS" --election-ticks "$NEM_ELECTION_TICKS" \
        --snapshot-entries "${NEM_SNAPSHOT_ENTRIES:-10000}" \
        --request-timeout-ms "$NEM_REQUEST_TIMEOUT_MS" \
        </dev/null >>"$NEM_ROOT/n$i.log" 2>&1 &
    PID[$i]=$!
    PAUSED[$i]=0
}

# True while node $1's process exists and is not a zombie.
nem_alive() {
    local pid=${PID[$1]:-0} st
    [ "$pid" -gt 0 ] || return 1
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# Reap node $1 if it exited on its own; prints why. 0 when it was dead.
nem_reap_if_dead() {
    local i=$1 pid=${PID[$1]:-0} st
    [ "$pid" -gt 0 ] || return 0
    nem_alive "$i" && return 1
    wait "$pid" 2>/dev/null; st=$?
    local why
    why=$(grep -a -E 'FATAL|ASSERT|panic|AddressSanitizer' "$NEM_ROOT/n$i.log" | tail -n 1)
    [ -n "$why" ] || why=$(tail -n 1 "$NEM_ROOT/n$i.log")
    nem_log "node $i (id ${ID[$i]}) had exited by itself, status $st: $(cut -c1-220 <<<"$why")"
    PID[$i]=0
    NEM_SELF_EXITS=$((NEM_SELF_EXITS + 1))
    return 0
}

nem_kill9() {
    local i=$1 pid=${PID[$1]:-0}
    [ "$pid" -gt 0 ] || return 0
    kill -KILL "$pid" 2>/dev/null
    kill -CONT "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    PID[$i]=0
    PAUSED[$i]=0
}

# redis-cli against node slot $1, from the client namespace, bounded.
nem_cli() {
    local i=$1; shift
    "${CLI_PREFIX[@]}" timeout 3 redis-cli -h "${ADDR[$i]}" -p "${PORT[$i]}" "$@" 2>/dev/null
}

nem_info_field() { # slot section field
    nem_cli "$1" INFO "$2" | tr -d '\r' | sed -n "s/^$3://p" | head -1
}

# Slot of the data-group leader that a majority of the responding nodes name, or "".
nem_leader() {
    local votes=() resp=0 role leader info i j
    declare -A claims=()
    for i in $(seq 1 $NEM_NODES); do
        nem_alive "$i" && [ "${PAUSED[$i]}" = 0 ] || continue
        info=$(nem_cli "$i" INFO raft | tr -d '\r') || continue
        role=$(sed -n 's/^role://p' <<<"$info" | head -1)
        leader=$(sed -n 's/^leader://p' <<<"$info" | head -1)
        [ -n "$role" ] || continue
        resp=$((resp + 1))
        [ "$role" = leader ] && claims[$i]=1
        for j in $(seq 1 $NEM_NODES); do
            [ "${ID[$j]}" = "$leader" ] && votes[$j]=$(( ${votes[$j]:-0} + 1 ))
        done
    done
    for i in "${!claims[@]}"; do
        if [ $(( ${votes[$i]:-0} * 2 )) -gt "$resp" ]; then echo "$i"; return 0; fi
    done
    return 1
}

nem_wait_leader() { # timeout_s
    local end=$(( SECONDS + $1 )) l
    while [ $SECONDS -lt $end ]; do
        l=$(nem_leader) && { echo "$l"; return 0; }
        sleep 0.2
    done
    return 1
}

# Every running member answers CFG.HEALTH +OK (within $1 s).
nem_wait_healthy() {
    local end=$(( SECONDS + $1 )) ok i
    while [ $SECONDS -lt $end ]; do
        ok=1
        for i in $(seq 1 $NEM_NODES); do
            [ "$(nem_cli "$i" CFG.HEALTH | tr -d '\r')" = OK ] || { ok=0; break; }
        done
        [ $ok = 1 ] && return 0
        sleep 0.3
    done
    for i in $(seq 1 $NEM_NODES); do
        echo "  node $i (id ${ID[$i]}): $(nem_cli "$i" CFG.HEALTH | tr -d '\r' | head -1)"
    done
    return 1
}

# A membership command on the leader, following -MOVED, retrying -TRYAGAIN/-NOQUORUM and
# timeouts for up to $1 s. Prints the last reply.
nem_admin() {
    local budget=$1; shift
    local end=$(( SECONDS + budget )) slot r target j
    slot=$(nem_leader) || slot=1
    while [ $SECONDS -lt $end ]; do
        r=$(nem_cli "$slot" "$@" | tr -d '\r' | head -1)
        case "$r" in
        OK) echo OK; return 0 ;;
        MOVED*)
            target=${r##* }
            for j in $(seq 1 $NEM_NODES); do
                [ "${ADDR[$j]}:${PORT[$j]}" = "$target" ] && slot=$j
            done ;;
        ""|TRYAGAIN*|NOQUORUM*|TIMEOUT*|"ERR server is shutting down"*)
            sleep 0.3; slot=$(nem_leader) || slot=$(( slot % NEM_NODES + 1 )) ;;
        *) echo "$r"; return 1 ;;
        esac
    done
    echo "${r:-timeout}"
    return 1
}

# ---------------------------------------------------------------- teardown

nem_teardown() {
    local i pid
    for pid in "${NEM_AUX_PIDS[@]}"; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    for i in $(seq 1 $NEM_NODES); do
        [ -n "${NEM_ROOT:-}" ] && rm -f "$NEM_ROOT/ctl-n$i/freeze" "$NEM_ROOT/ctl-n$i/eio"
        nem_kill9 "$i"
    done
    [ -n "${NEM_WORKLOAD_PID:-}" ] && kill -KILL "$NEM_WORKLOAD_PID" 2>/dev/null
    [ -n "${NEM_PROXY_PID:-}" ] && kill -KILL "$NEM_PROXY_PID" 2>/dev/null
    for pid in "${NEM_AUX_PIDS[@]}" ${NEM_WORKLOAD_PID:-} ${NEM_PROXY_PID:-}; do
        [ -n "$pid" ] && { kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
    done
    for pid in "${HOLDER[@]}"; do
        [ -n "$pid" ] && { kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
    done
    for ns in "${NEM_NETNS[@]}"; do
        ip netns del "$ns" 2>/dev/null
    done
}
