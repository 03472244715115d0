#!/usr/bin/env bash
# sim-bite.sh - prove that raftsim catches broken Raft rules.
#
# For each named bug: copy src/raft to /tmp/raft-bug-<name>.XXXX, apply a small sed patch to
# the COPY (src/raft is never touched), build the simulator against the copy, run SEEDS seeds
# of STEPS steps (stopping at the first failure), and report the first failing seed.
#
#   scripts/sim-bite.sh [bug ...]        default: all bugs below
#   SEEDS=1000 STEPS=2000 scripts/sim-bite.sh commit-old-term
#
# Bugs (each must change the copy, or the script says the patch no longer applies):
#   commit-old-term    the leader commits an entry of an earlier term by counting replicas
#                      (Raft paper 5.4.2, Figure 8)
#   vote-no-log-check  a vote (and pre-vote) is granted without the log up-to-date check
#                      (paper 5.4.1)
#   read-no-heartbeat  ReadIndex answered by the leader at once, without the heartbeat round
#                      that confirms it is still the leader (thesis 6.4)
#
# Exit status: 0 when every requested bug was caught, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
SEEDS=${SEEDS:-20000}
STEPS=${STEPS:-2000}
CC=${CC:-cc}

patch_for() { # bug -> "file<TAB>sed expression"
    local f e
    case $1 in
    commit-old-term) # drop "|| t != r->term" from the commit rule
        f=replication.c
        e='s/ || t != r->term) return false;/) return false; (void)t;/' ;;
    vote-no-log-check) # grant without rlog_up_to_date()
        f=election.c
        e='s/if (can \&\& rlog_up_to_date(&r->log, m->index, m->log_term)) {/if (can) {/' ;;
    read-no-heartbeat) # answer at once, as if the lease were always valid
        f=read_index.c
        e='s/if (committed_in_term(r) \&\& rr_lease_valid(r)) {/if (committed_in_term(r)) {/' ;;
    *) return 1 ;;
    esac
    printf '%s\t%s' "$f" "$e"
}

bugs=("$@")
[ ${#bugs[@]} -eq 0 ] && bugs=(commit-old-term vote-no-log-check read-no-heartbeat)
missed=0
for bug in "${bugs[@]}"; do
    if ! spec=$(patch_for "$bug"); then
        echo "unknown bug: $bug"; missed=1; continue
    fi
    file=${spec%%$'\t'*}
    expr=${spec#*$'\t'}
    dir=$(mktemp -d "/tmp/raft-bug-$bug.XXXX")
    cp -r src/raft "$dir/raft"
    sed -i -e "$expr" "$dir/raft/$file"
    if cmp -s "src/raft/$file" "$dir/raft/$file"; then
        echo "$bug: patch did not apply to src/raft/$file (the core changed?); sed: $expr"
        missed=1; continue
    fi
    # -I"$dir" first: "raft/raft.h" resolves to the copy; -Isrc for rc.h and raft_wire.h.
    if ! $CC -std=c11 -D_GNU_SOURCE -O2 -g -w -I"$dir" -Isrc -o "$dir/raftsim" \
        tests/fault/sim/*.c src/raft_wire.c "$dir"/raft/*.c -lxxhash 2>"$dir/build.log"; then
        echo "$bug: build failed, see $dir/build.log"; missed=1; continue
    fi
    start=$SECONDS
    # Stop at the first failing seed: its number is how many seeds it took.
    "$dir/raftsim" --seeds "$SEEDS" --steps "$STEPS" --max-fail 1 --quiet >"$dir/run.log" 2>&1
    first=$(grep -m1 '^FAIL seed=' "$dir/run.log")
    if [ -n "$first" ]; then
        seed=$(sed -E 's/^FAIL seed=([0-9]+).*/\1/' <<<"$first")
        echo "$bug: CAUGHT at seed $seed (seeds tried: $seed of up to $SEEDS)," \
             "$((SECONDS - start)) s"
        echo "    $first"
        echo "    $(grep -m1 '^replay:' "$dir/run.log")"
    else
        echo "$bug: NOT caught in $SEEDS seeds x $STEPS steps ($(tail -1 "$dir/run.log"))"
        missed=1
    fi
    echo "    copy, patch and logs: $dir"
done
exit $missed
