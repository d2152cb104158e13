#!/usr/bin/env bash
# Installs the Debian packages kitenats needs, only those that are missing.
#   deps.sh build   librocksdb-dev (the RocksDB store links against it)
#   deps.sh test    also mariadb-server and zookeeper (store and registry tests)
#                   and fuse3 (fusermount3 for the power-cut tests' FUSE disk,
#                   internal/powerfs; they also need the /dev/fuse device)
#                   and chromium (the admin dashboard's headless browser test,
#                   integration/dashboard_test.go, drives it through chromedp)
#   deps.sh image   debootstrap (scripts/image.sh makes the images' base with it)
set -euo pipefail
want=(librocksdb-dev)
case "${1:-build}" in
test) want+=(mariadb-server zookeeper fuse3 chromium) ;;
image) want=(debootstrap) ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "installing ${missing[*]} ..." >&2
for p in "${missing[@]}"; do
  [ "$p" = chromium ] && echo "  chromium is large (a few hundred MB installed; about a minute here): it runs the dashboard's browser test" >&2
done
$sudo apt-get update -qq
# policy-rc.d keeps the packages from starting system services: tests start
# private instances on 127.0.0.1 themselves.
DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq "${missing[@]}" >&2
