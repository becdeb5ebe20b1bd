#!/usr/bin/env bash
# Installs the Debian packages that tests run for real: PostgreSQL (storage contract tests,
# multi-worker tests) and Chromium (index.html rendering, check-feeds page checks).
# Only when missing, and only when we may (root with apt-get); otherwise those tests skip with a reason.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
((${#need[@]})) || exit 0
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${need[*]}; install them (apt-get install ${need[*]}) or those tests will skip" >&2
  exit 0
fi
echo "system-deps: apt-get install ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
  || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
