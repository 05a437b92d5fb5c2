#!/usr/bin/env bash
# System packages the test suite uses: Java 17 (Spark local mode), Chromium (report checks)
# and the PostgreSQL server (a throwaway cluster for the gateway's shared account store).
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
# Debian keeps initdb/postgres off PATH, in /usr/lib/postgresql/<version>/bin.
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
  || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "note: missing system packages (${need[*]}); run as root or 'sudo apt-get install ${need[*]}'. Tests that need them will skip."
  exit 0
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || echo "warning: could not install ${need[*]}; tests that need them will skip."
