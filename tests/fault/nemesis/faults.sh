# faults.sh - the nemeses: each nem_f_<name> applies one fault drawn from the seeded
# generator (nem_rnd), logs what it did and sets HEAL to the command that undoes it.
# nem_heal runs HEAL and then brings back every node that is down (a node the fault
# killed, or one that stopped itself, e.g. after a failed fsync). Sourced by run.sh.
#
# Where faults act (NETMODE=netns):
#   partitions       nftables table "inet rcnem" in the node namespaces (drop, not reject:
#                    a partition is silence, connections stall until the server gives up)
#   loss             nftables "bridge rcnem" forward chain in the bridge namespace
#   duplication      nftables "netdev rcnem<i>" ingress of each node's bridge port: `dup to`
#                    the destination's port (the kernel's TEE; iptables-nft translates
#                    `-j TEE` into the same expression)
#   delay/reorder    iptables NFQUEUE in the node namespace + nemdelay (this kernel has no
#                    netem, and nftables' own `queue` expression is not built in)
#   clock            libfaketime spec file of the node (FAKETIME_TIMESTAMP_FILE)
#   disk             nemfs.so flag files (eio, freeze), the node's private tmpfs (full), and
#                    the fsync side file replayed after kill -9 (lost unsynced writes)

HEAL=()

nem_other_than() { # slot -> a random other slot in R
    nem_rnd $(( NEM_NODES - 1 )); R=$(( R + 1 )); [ "$R" -ge "$1" ] && R=$(( R + 1 )); true
}

# A random running slot; with probability 1/2 the leader when one is known.
nem_pick_target() {
    local l
    nem_rnd 2
    if [ "$R" = 0 ] && l=$(nem_leader); then R=$l; return 0; fi
    nem_rnd_range 1 "$NEM_NODES"
}

nem_pick_follower() {
    local l
    l=$(nem_leader) || return 1
    nem_other_than "$l"
}

# ---------------------------------------------------------------- partitions

nem_nft() { ip netns exec "${NS[$1]}" nft "${@:2}"; }

nem_cut() { # both directions between slots $1 and $2
    if [ "$NETMODE" = proxy ]; then
        nem_proxy "drop ${ROUTE[$1,$2]} both" && nem_proxy "drop ${ROUTE[$2,$1]} both"
        return
    fi
    local a b
    for a in "$1" "$2"; do
        b=$(( $1 + $2 - a ))
        nem_nft "$a" add rule inet rcnem input ip saddr "${ADDR[$b]}" drop
        nem_nft "$a" add rule inet rcnem output ip daddr "${ADDR[$b]}" drop
    done
}

nem_cut_dial() { # slot $1 can no longer dial slot $2 (its connection to $2's cluster port)
    if [ "$NETMODE" = proxy ]; then
        nem_proxy "drop ${ROUTE[$1,$2]} both"
        return
    fi
    nem_nft "$1" add rule inet rcnem output ip daddr "${ADDR[$2]}" tcp dport \
        $(( PORT[$2] + NEM_CPORT_OFFSET )) drop
}

nem_heal_net() {
    if [ "$NETMODE" = proxy ]; then nem_proxy "pass * both"; return; fi
    local i
    for i in $(seq 1 $NEM_NODES); do
        nem_nft "$i" flush chain inet rcnem input
        nem_nft "$i" flush chain inet rcnem output
    done
}

nem_isolate() {
    local j
    for j in $(seq 1 $NEM_NODES); do [ "$j" != "$1" ] && nem_cut "$1" "$j"; done
}

nem_f_partition_leader() {
    local l
    l=$(nem_leader) || { nem_log "partition-leader: no leader known, isolating node 1"; l=1; }
    nem_isolate "$l"
    nem_log "FAULT partition-leader: node $l (id ${ID[$l]}) cut off from the others"
    HEAL=(nem_heal_net)
}

nem_f_partition_split() {
    nem_rnd_range 1 "$NEM_NODES"; local m=$R
    nem_isolate "$m"
    nem_log "FAULT partition-split: minority {$m} | majority {$(seq 1 $NEM_NODES | grep -vx "$m" | paste -sd,)}"
    HEAL=(nem_heal_net)
}

nem_f_partition_bridge() {
    nem_rnd_range 1 "$NEM_NODES"; local a=$R
    nem_other_than "$a"; local b=$R
    nem_cut "$a" "$b"
    nem_log "FAULT partition-bridge: link $a-$b cut, the third node sees both"
    HEAL=(nem_heal_net)
}

nem_f_partition_asym() {
    nem_pick_target; local a=$R
    nem_other_than "$a"; local b=$R
    nem_cut_dial "$a" "$b"
    nem_log "FAULT partition-asym: node $a cannot dial node $b (node $b can still dial $a)"
    HEAL=(nem_heal_net)
}

# ---------------------------------------------------------------- loss, duplication, delay

nem_node_set() { seq 1 $NEM_NODES | sed "s/^/$SUB./" | paste -sd, | sed 's/^/{ /; s/$/ }/'; }

nem_f_loss() {
    nem_rnd_range 5 35; local p=$R
    ip netns exec "$BRNS" nft add rule bridge rcnem nemfwd ip saddr "$(nem_node_set)" \
        ip daddr "$(nem_node_set)" numgen random mod 100 '<' "$p" counter drop
    nem_log "FAULT loss: ${p}% of packets between nodes dropped at the bridge"
    HEAL=(nem_heal_loss)
}
nem_heal_loss() {
    local n
    n=$(nem_counted bridge rcnem nemfwd)
    [ "$n" -gt 0 ] && nem_log "  loss: $n packets dropped"
    ip netns exec "$BRNS" nft flush chain bridge rcnem nemfwd
}
nem_counted() { # packets counted by the rules of one bridge-namespace chain
    ip netns exec "$BRNS" nft list chain "$@" | grep -o 'packets [0-9]*' |
        awk '{ n += $2 } END { print n + 0 }'
}

nem_f_dup() {
    nem_rnd_range 10 60; local p=$R i j
    for i in $(seq 1 $NEM_NODES); do for j in $(seq 1 $NEM_NODES); do
        [ "$i" = "$j" ] && continue
        ip netns exec "$BRNS" nft add rule netdev "rcnem$i" nemin ip daddr "${ADDR[$j]}" \
            numgen random mod 100 '<' "$p" counter dup to "v$j"
    done; done
    nem_log "FAULT dup: ${p}% of packets between nodes duplicated at the bridge"
    HEAL=(nem_heal_dup)
}
nem_heal_dup() {
    local i n=0
    for i in $(seq 1 $NEM_NODES); do n=$(( n + $(nem_counted netdev "rcnem$i" nemin) )); done
    [ "$n" -gt 0 ] && nem_log "  dup: $n packets duplicated"
    for i in $(seq 1 $NEM_NODES); do ip netns exec "$BRNS" nft flush chain netdev "rcnem$i" nemin; done
}

# Peer traffic of node $1 (to or from a cluster port) goes to NFQUEUE 7; $2 = -I or -D.
nem_delay_rules() {
    local cp=$(( PORT[$1] + NEM_CPORT_OFFSET ))
    ip netns exec "${NS[$1]}" iptables -w "$2" OUTPUT -p tcp --dport "$cp" \
        -j NFQUEUE --queue-num 7 --queue-bypass &&
    ip netns exec "${NS[$1]}" iptables -w "$2" OUTPUT -p tcp --sport "$cp" \
        -j NFQUEUE --queue-num 7 --queue-bypass
}

nem_f_delay() {
    local targets d j seed i
    nem_rnd 2
    if [ "$R" = 0 ]; then targets=$(seq 1 $NEM_NODES); else nem_rnd_range 1 "$NEM_NODES"; targets=$R; fi
    nem_rnd_range 5 150; d=$R
    nem_rnd_range 0 200; j=$R
    nem_rnd 1000000; seed=$R
    DELAYED=()
    for i in $targets; do
        nem_delay_rules "$i" -I || continue
        ip netns exec "${NS[$i]}" "$NEM_BUILD/nemdelay" --queue 7 --delay-ms "$d" \
            --jitter-ms "$j" --seed "$((seed + i))" >>"$NEM_ROOT/nemdelay.log" 2>&1 &
        DELAY_PID[$i]=$!
        NEM_AUX_PIDS+=("$!")
        DELAYED+=("$i")
    done
    nem_log "FAULT delay: nodes {$(echo $targets | tr ' ' ,)} send peer packets $d ms" \
        "+ up to $j ms late (NFQUEUE, reordered)"
    HEAL=(nem_heal_delay)
}
nem_heal_delay() {
    local i
    for i in "${DELAYED[@]}"; do
        nem_delay_rules "$i" -D
        kill -TERM "${DELAY_PID[$i]}" 2>/dev/null
        wait "${DELAY_PID[$i]}" 2>/dev/null
    done
    [ ${#DELAYED[@]} -gt 0 ] && nem_log "  nemdelay: $(grep -a 'nemdelay: seen' \
        "$NEM_ROOT/nemdelay.log" | tail -n ${#DELAYED[@]} | sed 's/nemdelay: //' | paste -sd';')"
    DELAYED=()
}

nem_f_hold() { # fallback mode's stand-in for delay: the proxy stops reading a node's links
    nem_rnd_range 1 "$NEM_NODES"; local m=$R j
    for j in $(seq 1 $NEM_NODES); do
        [ "$j" = "$m" ] && continue
        nem_proxy "hold ${ROUTE[$m,$j]} both"; nem_proxy "hold ${ROUTE[$j,$m]} both"
    done
    nem_log "FAULT hold: node $m's peer links stall in the proxy (TCP buffers hold the bytes)"
    HEAL=(nem_heal_net)
}

# ---------------------------------------------------------------- processes

nem_f_kill() {
    nem_pick_target; local t=$R
    nem_kill9 "$t"
    nem_log "FAULT kill: kill -9 node $t (id ${ID[$t]}); restarts at heal"
    HEAL=(true)
}

nem_f_pause() {
    nem_pick_target; local t=$R
    nem_alive "$t" || { HEAL=(true); return; }
    kill -STOP "${PID[$t]}"; PAUSED[$t]=1
    nem_log "FAULT pause: SIGSTOP node $t (id ${ID[$t]})"
    HEAL=(nem_resume "$t")
}
nem_resume() { kill -CONT "${PID[$1]}" 2>/dev/null; PAUSED[$1]=0; }

# ---------------------------------------------------------------- clocks (libfaketime)

# Write node $1's spec so its fake clock continues from where it is now, at rate $2:
# fake = start + off + elapsed * rate, so a new (off', rate') that agrees now is
# off' = off + elapsed * (rate - rate'), plus an optional jump $3 (seconds).
nem_clock_set() {
    local i=$1 rate=$2 jump=${3:-0} now
    now=$(date +%s.%N)
    FT_OFF[$i]=$(awk -v o="${FT_OFF[$i]}" -v r="${FT_RATE[$i]}" -v r2="$rate" -v n="$now" \
        -v t0="${FT_T0[$i]}" -v j="$jump" 'BEGIN { printf "%.3f", o + (n - t0) * (r - r2) + j }')
    FT_RATE[$i]=$rate
    local spec
    spec=$(awk -v o="${FT_OFF[$i]}" 'BEGIN { printf "%s%.3f", (o < 0 ? "" : "+"), o }')
    [ "$rate" != 1 ] && spec+=" x$rate"
    echo "$spec" >"$NEM_ROOT/ft-n$i.tmp" && mv "$NEM_ROOT/ft-n$i.tmp" "$NEM_ROOT/ft-n$i"
}

nem_f_clock_jump() {
    nem_pick_target; local t=$R jump
    nem_rnd 3
    if [ "$R" = 0 ]; then nem_rnd_range 1 5; jump=-$R; else nem_rnd_range 1 30; jump=$R; fi
    nem_alive "$t" && nem_clock_set "$t" "${FT_RATE[$t]}" "$jump"
    nem_log "FAULT clock-jump: node $t's clocks (realtime and monotonic) jump ${jump} s"
    HEAL=(true)
}

nem_f_clock_skew() {
    nem_pick_target; local t=$R rates=(0.2 0.5 2 4)
    nem_rnd 4; local rate=${rates[$R]}
    nem_alive "$t" && nem_clock_set "$t" "$rate"
    nem_log "FAULT clock-skew: node $t's clocks run at x$rate"
    HEAL=(nem_clock_set "$t" 1)
}

# ---------------------------------------------------------------- disks (nemfs.so)

# Power loss of node $1 (already killed): cut every file back to its last fsync'd size
# (torn = a random length of the unsynced tail survives), per the shim's side file.
nem_lose_unsynced() {
    local i=$1 torn=$2 path size cur keep n=0 lost=0 in=()
    local side="$NEM_ROOT/fs-n$i.log"
    # node 1 of the disk scenarios keeps its data on a tmpfs seen only in its mount namespace
    [ -n "${HOLDER[$i]:-}" ] && in=(nsenter -t "${HOLDER[$i]}" -m)
    declare -A synced=()
    # Replay the side file: S sets a file's durable size, R moves it, U forgets it.
    if [ -f "$side" ]; then
        while read -r size path; do synced[$path]=$size; done < <(awk '
            $1 == "S" { s[$3] = $2 }
            $1 == "R" { if ($2 in s) s[$3] = s[$2]; else delete s[$3]; delete s[$2] }
            $1 == "U" { delete s[$2] }
            END { for (p in s) print s[p], p }' "$side")
    fi
    while IFS= read -r -d '' path; do
        case "${path##*/}" in LOCK|LOG|LOG.old) continue ;; esac
        size=${synced[$path]:-0}
        cur=$("${in[@]}" stat -c %s "$path")
        [ "$cur" -gt "$size" ] || continue
        keep=$size
        if [ "$torn" = 1 ]; then nem_rnd $(( cur - size + 1 )); keep=$(( size + R )); fi
        "${in[@]}" truncate -s "$keep" "$path"
        n=$((n + 1)); lost=$(( lost + cur - keep ))
    done < <("${in[@]}" find "${DIR[$i]}" -type f -print0 | sort -z)
    nem_log "  node $i lost $lost unsynced bytes in $n files$([ "$torn" = 1 ] && echo ' (torn tails kept)')"
}

nem_f_disk_crash() {
    nem_rnd_range 1 "$NEM_NODES"; local t=$R
    nem_rnd 2; local torn=$R
    nem_kill9 "$t"
    nem_log "FAULT disk-crash: power loss of node $t (id ${ID[$t]}): kill -9, unsynced writes lost"
    nem_lose_unsynced "$t" "$torn"
    HEAL=(true)
}

nem_f_disk_crash_all() {
    local i
    nem_rnd 2; local torn=$R
    for i in $(seq 1 $NEM_NODES); do nem_kill9 "$i"; done
    nem_log "FAULT disk-crash-all: power loss of every node at once"
    for i in $(seq 1 $NEM_NODES); do nem_lose_unsynced "$i" "$torn"; done
    HEAL=(true)
}

nem_f_disk_eio() {
    nem_rnd_range 1 "$NEM_NODES"; local t=$R
    touch "$NEM_ROOT/ctl-n$t/eio"
    NEM_CRASHY[$t]=1
    nem_log "FAULT disk-eio: node $t's fsync/fdatasync fail with EIO"
    HEAL=(rm -f "$NEM_ROOT/ctl-n$t/eio")
}

nem_f_disk_freeze() {
    nem_rnd_range 1 "$NEM_NODES"; local t=$R
    touch "$NEM_ROOT/ctl-n$t/freeze"
    nem_log "FAULT disk-freeze: node $t's fsync/fdatasync block"
    HEAL=(rm -f "$NEM_ROOT/ctl-n$t/freeze")
}

nem_f_disk_full() {
    local t=$NEM_FULL_NODE
    nsenter -t "${HOLDER[$t]}" -m sh -c "cat /dev/zero > '${DIR[$t]}/nem-filler' 2>/dev/null; true"
    local left
    left=$(nsenter -t "${HOLDER[$t]}" -m df -h --output=avail "${DIR[$t]}" | tail -1 | tr -d ' ')
    nem_log "FAULT disk-full: node $t's data tmpfs filled ($left left)"
    HEAL=(nsenter -t "${HOLDER[$t]}" -m rm -f "${DIR[$t]}/nem-filler")
}

# ---------------------------------------------------------------- membership

# Replace a follower: cut it off (or kill it), remove it from the cluster on the leader,
# wipe it, start it again with a new id, add it as a learner and promote it - while the
# fault of the moment goes on.
nem_f_member() {
    local f old new r
    nem_pick_follower || { nem_log "member: no leader, skipped"; HEAL=(true); return; }
    f=$R; old=${ID[$f]}; new=$NEM_NEXT_ID
    nem_rnd 2
    if [ "$R" = 0 ]; then nem_isolate "$f"; nem_log "FAULT member: node $f (id $old) cut off"
    else nem_kill9 "$f"; nem_log "FAULT member: node $f (id $old) killed"; fi
    r=$(nem_admin 15 CFG.CLUSTER REMOVE "$old")
    nem_log "  CFG.CLUSTER REMOVE $old -> $r"
    nem_heal_net
    if [ "$r" != OK ]; then HEAL=(true); return; fi
    nem_kill9 "$f"
    rm -rf "${DIR[$f]}" "$NEM_ROOT/fs-n$f.log"
    NEM_NEXT_ID=$((NEM_NEXT_ID + 1)); ID[$f]=$new
    nem_start_node "$f"
    nem_rnd 2
    [ "$R" = 0 ] && nem_f_loss   # the new member catches up through a lossy network
    r=$(nem_admin 15 CFG.CLUSTER ADD "$new" "${ADDR[$f]}:${PORT[$f]}" LEARNER)
    nem_log "  node $f restarted empty as id $new; CFG.CLUSTER ADD $new LEARNER -> $r"
    HEAL=(nem_promote "$f")
}
nem_promote() {
    local r
    r=$(nem_admin 20 CFG.CLUSTER PROMOTE "${ID[$1]}")
    # a retry after a lost reply finds the first attempt applied
    [[ "$r" == *"already a voter"* ]] && r="OK (applied by an earlier attempt: $r)"
    nem_log "  CFG.CLUSTER PROMOTE ${ID[$1]} -> $r"
    nem_heal_loss
}

# ---------------------------------------------------------------- heal

nem_heal() {
    local i
    "${HEAL[@]}"
    HEAL=()
    for i in $(seq 1 $NEM_NODES); do
        [ "${PAUSED[$i]}" = 1 ] && nem_resume "$i"
        if nem_reap_if_dead "$i"; then
            if [ "${NEM_DISKSHIM:-0}" = 1 ] && [ "${NEM_CRASHY[$i]:-0}" = 1 ]; then
                nem_lose_unsynced "$i" 0   # its fsync failed: what it wrote may be gone
            fi
            nem_start_node "$i"
            NEM_RESTARTS=$((NEM_RESTARTS + 1))
        fi
        NEM_CRASHY[$i]=0
    done
}

nem_heal_all() {
    local i
    [ ${#HEAL[@]} -gt 0 ] && nem_heal
    if [ "$NETMODE" = netns ]; then
        nem_heal_net; nem_heal_loss; nem_heal_dup; nem_heal_delay
        for i in $(seq 1 $NEM_NODES); do
            rm -f "$NEM_ROOT/ctl-n$i/eio" "$NEM_ROOT/ctl-n$i/freeze"
            [ "${NEM_FAKETIME:-0}" = 1 ] && nem_alive "$i" && [ "${FT_RATE[$i]}" != 1 ] &&
                nem_clock_set "$i" 1
        done
    else
        nem_heal_net
    fi
    nem_heal
}
