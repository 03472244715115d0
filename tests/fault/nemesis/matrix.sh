#!/usr/bin/env bash
# matrix.sh - run several nemesis scenarios one after another (tests/fault/nemesis/run.sh)
# and print one summary table. `make nemesis` and tests/fault/nemesis-ci.sh call it.
#
#   matrix.sh [--duration-s N] [--seed S] [--scenarios "a b ..."]
#
# Without --seed each scenario k (from 0) gets seed 1000 + k, so a plain run is the same
# schedule every time; with --seed S it gets S + k. Exit 0 only when every scenario is
# linearizable and healthy at the end; 1 when any is not linearizable; 2 otherwise.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
duration=120 seed=1000 scenarios=""
while [ $# -gt 0 ]; do
    case "$1" in
    --duration-s) duration=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    *) echo "usage: matrix.sh [--duration-s N] [--seed S] [--scenarios \"a b\"]" >&2; exit 2 ;;
    esac
done
[ -n "$scenarios" ] || scenarios=$("$HERE/run.sh" --list)
out_dir=$(mktemp -d /tmp/rcnem-matrix-XXXXXX)
rows=() worst=0 k=0 t_all=$SECONDS
for s in $scenarios; do
    t0=$SECONDS
    "$HERE/run.sh" --scenario "$s" --duration-s "$duration" --seed $((seed + k)) 2>&1 |
        tee "$out_dir/$s.log"
    rc=${PIPESTATUS[0]}
    ops=$(awk '/^operations/ {on = 1; next} on && /^  total/ {print $2; exit}' "$out_dir/$s.log")
    okn=$(awk '/^operations/ {on = 1; next} on && /^lincheck/ {exit}
               on && $2 == "ok" {n += $3} END {print n + 0}' "$out_dir/$s.log")
    unk=$(awk '/^operations/ {on = 1; next} on && /^lincheck/ {exit}
               on && $2 == "unknown" {n += $3} END {print n + 0}' "$out_dir/$s.log")
    nf=$(sed -n 's/^faults: *\([0-9]*\) applied.*/\1/p' "$out_dir/$s.log")
    verdict=$(sed -n 's/^verdict: *//p' "$out_dir/$s.log")
    rows+=("$(printf '%-10s seed %-6s %4ss  faults %-3s ops %-7s ok %-7s unknown %-5s rc %s  %s' \
        "$s" $((seed + k)) $((SECONDS - t0)) "${nf:-?}" "${ops:-0}" "$okn" "$unk" "$rc" \
        "${verdict:-no verdict}")")
    if [ "$rc" = 1 ]; then worst=1; elif [ "$rc" != 0 ] && [ "$worst" = 0 ]; then worst=2; fi
    k=$((k + 1))
done
echo
echo "==================== nemesis matrix (${duration}s per scenario, $((SECONDS - t_all)) s in all) ===================="
printf '%s\n' "${rows[@]}"
# What the checker found, last, where a CI log's tail still shows it.
for s in $scenarios; do
    if grep -aq '^  | ' "$out_dir/$s.log"; then
        echo "---- $s: lincheck findings"
        grep -a '^  | ' "$out_dir/$s.log" | head -20
        grep -a '^reproduce:' "$out_dir/$s.log"
    fi
done
echo "logs: $out_dir"
exit $worst
