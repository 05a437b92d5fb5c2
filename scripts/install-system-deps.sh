#!/usr/bin/env bash
# System packages the test suite uses: Java 17 (Spark local mode) and Chromium (report checks).
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "note: missing system packages (${need[*]}); run as root or 'sudo apt-get install ${need[*]}'. Tests that need them will skip."
  exit 0
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || echo "warning: could not install ${need[*]}; tests that need them will skip."
