#!/usr/bin/env bash
# unit-verify.sh: checks deploy/systemd/kitenats.service with systemd-analyze
# (systemd's own checks of every directive), then prints its sandboxing score.
# The unit names /usr/local/bin/kitenats, so it is verified in a scratch root
# holding bin/kitenats there and the standard targets, not on this machine's
# own /usr/local/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v systemd-analyze >/dev/null || { echo "unit-verify.sh: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
[ -x bin/kitenats ] || { echo "unit-verify.sh: bin/kitenats missing: make build" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system"
cp bin/kitenats "$root/usr/local/bin/"
cp deploy/systemd/kitenats.service "$root/etc/systemd/system/"
for u in sysinit.target basic.target shutdown.target multi-user.target network-online.target; do
	cp "/lib/systemd/system/$u" "$root/etc/systemd/system/"
done
systemd-analyze verify --root="$root" /etc/systemd/system/kitenats.service
echo "systemd-analyze verify: ok"
systemd-analyze security --offline=yes --root="$root" kitenats.service | tail -n 1
