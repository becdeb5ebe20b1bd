#!/usr/bin/env bash
# Installs what `make bench` measures against: newsboat (the peer timing of ../shared/bench/peer_newsboat.sh).
# Only when missing, and only when we may (root with apt-get); otherwise the newsboat rows stay empty.
set -euo pipefail
command -v newsboat >/dev/null 2>&1 && exit 0
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "bench-deps: newsboat missing; install it (apt-get install newsboat) or the newsboat rows stay empty" >&2
  exit 0
fi
echo "bench-deps: apt-get install newsboat" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends newsboat >/dev/null 2>&1 \
  || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends newsboat >/dev/null; }
