#!/usr/bin/env bash
# Installs the Debian packages raftconf needs to build, run and test. Idempotent: does
# nothing when everything is present. Needs root (or sudo) for apt-get.
set -euo pipefail
pkgs=(build-essential pkg-config libevent-dev libleveldb-dev libxxhash-dev libjansson-dev
      libpcre2-dev libssl-dev libhiredis-dev libcriterion-dev redis-tools redis-server
      iproute2 procps json-schema-test-suite python3-redis nftables iptables libfaketime
      faketime libnetfilter-queue-dev)
# Node.js runs the npm clients of redis-tests/ (ioredis, node-redis); Debian's nodejs and
# npm when the machine has no node of its own.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then echo "deps: all ${#pkgs[@]} packages present"; exit 0; fi
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
