#!/usr/bin/env bash
# Starts private MariaDB and ZooKeeper instances on 127.0.0.1, runs the unit
# tests (go test -race ./...) and the integration suite, and stops what it
# started, whatever happens. Before the integration suite, when a Docker
# engine answers, it builds the images that suite runs (scripts/image.sh:
# only those missing or stale).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="$PWD/.cache"
mkdir -p "$cache"
mysql_port=${KITENATS_MYSQL_PORT:-13306}
zk_port=${KITENATS_ZK_PORT:-2181}

cleanup() {
  scripts/zookeeper.sh stop "$cache/zk" "$zk_port" || true
  scripts/mariadb.sh stop "$cache/mariadb" "$mysql_port" || true
}
trap cleanup EXIT

scripts/mariadb.sh start "$cache/mariadb" "$mysql_port"
scripts/zookeeper.sh start "$cache/zk" "$zk_port"
export KITENATS_MYSQL_ADDR="127.0.0.1:$mysql_port"
export KITENATS_ZK_ADDR="127.0.0.1:$zk_port"
export CGO_ENABLED=1

echo "== unit tests (go test -race ./...)"
go test -race -shuffle=on -count=1 -timeout 15m ./...

if [ -d integration ]; then
  echo "== integration tests"
  go build -o bin/kitenats .
  # The image tests run the images make image builds: build the missing
  # ones (and the broker's again when bin/kitenats changed). Without a
  # Docker engine those tests skip, or fail when CI is set.
  if docker info >/dev/null 2>&1; then
    if ! scripts/image.sh all; then
      [ -z "${CI:-}" ] || exit 1
      echo "building the images failed: the image tests skip" >&2
    fi
  else
    echo "no Docker engine answers (docker info): the image tests skip (they fail when CI is set)" >&2
  fi
  go test -race -count=1 -timeout 20m -tags integration ./integration/...
fi
