#!/bin/bash
# kitenats-entrypoint: runs `kitenats serve` as PID 1 with flags taken from the
# environment, then the container's arguments (a later flag wins, so
#   docker run kitenats/broker:dev -advertise 10.0.0.5:13800 -debug
# adds or overrides flags). A first argument that is not a flag is a kitenats
# command instead (docker run --rm kitenats/broker:dev help).
#
#   KITENATS_NATS       -nats        0.0.0.0:4222 (the admin port listens on this host too)
#   KITENATS_BIND       -bind        0.0.0.0:13800
#   KITENATS_PPORT      -pport       13801
#   KITENATS_DB         -db          rocksdb:///data
#   KITENATS_ADVERTISE  -advertise   (none; needed with a registry, -bind being 0.0.0.0)
#   KITENATS_REGISTRY   -registry    (none)
#   KITENATS_CONFIG     -configPath  (none; mount one, e.g. at /etc/kitenats/cluster.toml)
#   KITENATS_CLUSTER    -clusterName (none)
#
# An empty variable leaves its flag out, so a value in cluster.toml applies
# (flags override the file): -e KITENATS_DB= to take db from the file.
set -euo pipefail

if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
	exec /usr/local/bin/kitenats "$@"
fi

args=()
add() { # FLAG VALUE
	[ -z "$2" ] || args+=("$1" "$2")
}
add -nats "${KITENATS_NATS-}"
add -bind "${KITENATS_BIND-}"
add -pport "${KITENATS_PPORT-}"
add -db "${KITENATS_DB-}"
add -advertise "${KITENATS_ADVERTISE-}"
add -registry "${KITENATS_REGISTRY-}"
add -configPath "${KITENATS_CONFIG-}"
add -clusterName "${KITENATS_CLUSTER-}"
exec /usr/local/bin/kitenats serve "${args[@]}" "$@"
