#!/usr/bin/env bash
# Fails if the Raft core or the namespace state machine reach for clocks, randomness,
# sockets, files, threads, libevent or LevelDB (see ../shared/STYLE.md, module boundaries).
# usage: check-purity.sh raft-objects... -- ns-objects...
set -euo pipefail
raft=(); ns=(); side=raft
for a in "$@"; do
  if [ "$a" = "--" ]; then side=ns; continue; fi
  if [ $side = raft ]; then raft+=("$a"); else ns+=("$a"); fi
done
# Symbols forbidden in both; the Raft core may not touch files or stdio either.
common='^(time|clock_gettime|gettimeofday|clock|rand|random|srand|srandom|rand_r|drand48|arc4random|getrandom|socket|connect|accept|accept4|bind|listen|send|recv|sendto|recvfrom|fsync|fdatasync|sync|pthread_.*|event_.*|evbuffer_.*|bufferevent_.*|leveldb_.*|sleep|usleep|nanosleep|select|poll|epoll_.*)$'
rawio='^(open|open64|openat|read|write|close|fopen|fopen64|fread|fwrite|fclose|fprintf|printf|puts|fputs|mmap|unlink|rename)$'
bad=0
check() { # label regex objs...
  local label=$1 re=$2; shift 2
  for o in "$@"; do
    local hits
    hits=$(nm -u "$o" | awk '{print $NF}' | sed 's/@.*//' | grep -E "$re" || true)
    if [ -n "$hits" ]; then
      echo "purity: $label object $o references forbidden symbols: $(echo $hits)"
      bad=1
    fi
  done
}
[ ${#raft[@]} -gt 0 ] && check raft "$common|$rawio" "${raft[@]}"
[ ${#ns[@]} -gt 0 ] && check ns "$common" "${ns[@]}"
if [ $bad -ne 0 ]; then echo "purity check: FAILED"; exit 1; fi
echo "purity check: src/raft (${#raft[@]} objects) and src/ns (${#ns[@]} objects) clean"
