#!/usr/bin/env bash
# nemesis-ci.sh - the CI-sized nemesis run (scripts/run-tests.sh runs it in the plain pass):
# 6 scenarios of 60 s each on real 3-node clusters in network namespaces, about 7 minutes
# in all: partitions, network loss/duplication/delay, kill -9 with membership changes,
# SIGSTOP, clock steps (clock-jump: the clock scenario without clock-skew, whose libfaketime
# rates leave a node's clock in a state that can keep it from following its leader for
# longer than the run waits; docs/testing.md "Clocks"), and the disk (power loss, EIO, frozen and full disk). Exit 0 only when every verdict is clean (linearizable, no acknowledged write lost,
# healthy after healing). NEM_CI_DURATION and NEM_SEED override the duration and base seed.
# The nodes compact their logs every 2000 entries (NEM_SNAPSHOT_ENTRIES; the server's default
# is 10000), so a node that was cut off or down for a few seconds catches up by snapshot
# install (3-8 installs per 75 s partition run here), and that path runs under faults.
# The full matrix with longer runs: make nemesis DURATION=... (docs/testing.md).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export NEM_SNAPSHOT_ENTRIES=${NEM_SNAPSHOT_ENTRIES:-2000}
exec "$HERE/nemesis/matrix.sh" --duration-s "${NEM_CI_DURATION:-60}" --seed "${NEM_SEED:-1000}" \
    --scenarios "partition net kill pause clock-jump disk-loss"
