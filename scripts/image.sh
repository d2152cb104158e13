#!/usr/bin/env bash
# image.sh: builds kitenats' Docker images from the Debian packages on this
# machine. No container registry is needed (none can be reached): the base is
# a debootstrap'ed minimal bookworm root, imported with `docker import`, and
# every other image is a Dockerfile (deploy/docker/*) FROM it.
#
#   scripts/image.sh [all|base|broker|mariadb|zookeeper|list]...   (default: all)
#
#   kitenats/base:bookworm   debootstrap --variant=minbase bookworm (debootstrap installed by
#                            scripts/deps.sh image when missing), the host's apt sources
#   kitenats/broker:$TAG     bin/kitenats (built on the host: same Debian, same glibc)
#                            + librocksdb7.8, user kitenats, VOLUME /data
#   kitenats/mariadb:10.11   Debian's mariadb-server, VOLUME /var/lib/mysql
#   kitenats/zookeeper:3.8   Debian's zookeeper + a headless JRE, VOLUME /data
#
# Cached: an image whose tag exists is kept, unless
#   * FORCE=1 (rebuild everything asked for),
#   * its recipe (the files of deploy/docker/<name>) changed (label org.kitenats.recipe),
#   * the base it was built on is no longer kitenats/base:bookworm (label org.kitenats.base),
#   * for the broker: bin/kitenats changed (label org.kitenats.binary = its sha256).
# The broker image needs bin/kitenats: `make image` builds it first.
#
# Environment: FORCE=1; TAG (broker tag, default dev); KITENATS_DEBIAN_MIRROR
# (default: the first URI of the host's apt sources); BIN (default bin/kitenats).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

BASE=kitenats/base:bookworm
TAG=${TAG:-dev}
BROKER=kitenats/broker:$TAG
MARIADB=kitenats/mariadb:10.11
ZOOKEEPER=kitenats/zookeeper:3.8
BIN=${BIN:-bin/kitenats}
FORCE=${FORCE:-}
work=$root/.cache/image
# The legacy builder: the engine here is 20.10 and buildx is not installed;
# every Dockerfile is plain enough for it.
export DOCKER_BUILDKIT=0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

t_all=$SECONDS
log() { printf '==> %s\n' "$*" >&2; }
# step WHAT CMD...: runs CMD, saying what it does and how long it took.
step() {
	local what=$1 t0=$SECONDS
	shift
	log "$what ..."
	"$@"
	log "$what: done in $((SECONDS - t0)) s"
}

exists() { docker image inspect "$1" >/dev/null 2>&1; }
# drop_old ID: removes an image a rebuild replaced, if it has no tag left
# and nothing uses it (a container); a replaced base still has the old
# images built on it as children, so it is tried again at the end.
retry_drop=()
drop_old() {
	[ -n "$1" ] || return 0
	[ "$(docker image inspect -f '{{len .RepoTags}}' "$1" 2>/dev/null)" = 0 ] || return 0
	docker image rm "$1" >/dev/null 2>&1 || retry_drop+=("$1")
}
label() { docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect -f '{{.Id}}' "$1"; }
size_of() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }
# recipe NAME: a hash of deploy/docker/NAME's files (names and contents).
recipe() {
	(cd deploy/docker/"$1" && find . -type f | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16
}

mirror() {
	if [ -n "${KITENATS_DEBIAN_MIRROR:-}" ]; then
		echo "$KITENATS_DEBIAN_MIRROR"
		return
	fi
	local m=""
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
		m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

need_debootstrap() { scripts/deps.sh image; }

bootstrap_root() { # DIR
	local dir=$1 m
	m=$(mirror)
	$sudo rm -rf "$dir"
	mkdir -p "$dir"
	log "debootstrap --variant=minbase bookworm from $m (log: $work/debootstrap.log)"
	if ! $sudo debootstrap --variant=minbase bookworm "$dir" "$m" >"$work/debootstrap.log" 2>&1; then
		tail -n 20 "$work/debootstrap.log" >&2
		return 1
	fi
	# apt inside the images reads the host's sources (updates and security
	# too), so images get the package versions the host runs.
	if [ -f /etc/apt/sources.list.d/debian.sources ] && [ -z "${KITENATS_DEBIAN_MIRROR:-}" ]; then
		$sudo cp /etc/apt/sources.list.d/debian.sources "$dir/etc/apt/sources.list.d/debian.sources"
		$sudo rm -f "$dir/etc/apt/sources.list"
	fi
	# What official Debian images do: no services started by postinst
	# scripts, no recommends, no docs, man pages or locales, no apt caches.
	$sudo tee "$dir/usr/sbin/policy-rc.d" >/dev/null <<-'EOF'
		#!/bin/sh
		exit 101
	EOF
	$sudo chmod 755 "$dir/usr/sbin/policy-rc.d"
	$sudo tee "$dir/etc/apt/apt.conf.d/90kitenats" >/dev/null <<-'EOF'
		APT::Install-Recommends "false";
		APT::Install-Suggests "false";
		Acquire::Languages "none";
		Dpkg::Use-Pty "false";
	EOF
	$sudo tee "$dir/etc/dpkg/dpkg.cfg.d/90kitenats-nodoc" >/dev/null <<-'EOF'
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/locale/*
		path-include /usr/share/locale/locale.alias
	EOF
	$sudo find "$dir/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
	# The man directories stay (empty): update-alternatives (the JRE's
	# postinst) fails when the directory of a slave link is missing.
	$sudo find "$dir/usr/share/man" "$dir/usr/share/info" ! -type d -delete
	$sudo mkdir -p "$dir"/usr/share/man/man{1..8}
	$sudo rm -rf "$dir/var/cache/apt"/*.bin \
		"$dir/var/cache/apt/archives"/*.deb "$dir/var/lib/apt/lists"/* "$dir/var/log"/*.log
}

import_root() { # DIR
	$sudo tar -C "$1" -c . | docker import \
		-c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' \
		-m "debootstrap --variant=minbase bookworm $(mirror)" - "$BASE" >/dev/null
}

base_done=""
build_base() {
	[ -z "$base_done" ] || return 0
	base_done=1
	if exists "$BASE" && [ -z "$FORCE" ]; then
		log "$BASE exists ($(size_of "$BASE")), kept (FORCE=1 rebuilds it)"
		return
	fi
	mkdir -p "$work"
	local t0=$SECONDS old
	old=$(image_id "$BASE" 2>/dev/null || true)
	need_debootstrap
	step "$BASE: debootstrap a minimal bookworm root" bootstrap_root "$work/rootfs"
	step "$BASE: docker import" import_root "$work/rootfs"
	$sudo rm -rf "$work/rootfs"
	drop_old "$old"
	log "$BASE built in $((SECONDS - t0)) s, $(size_of "$BASE")"
}

# build NAME IMAGE [LABEL=VALUE...]: docker build of deploy/docker/NAME FROM
# the base, unless IMAGE exists with the same recipe, base and labels.
build() {
	local name=$1 image=$2
	shift 2
	local want_recipe want_base why="" kv
	want_recipe=$(recipe "$name")
	want_base=$(image_id "$BASE")
	if ! exists "$image"; then
		why="missing"
	elif [ -n "$FORCE" ]; then
		why="FORCE=1"
	elif [ "$(label "$image" org.kitenats.recipe)" != "$want_recipe" ]; then
		why="deploy/docker/$name changed"
	elif [ "$(label "$image" org.kitenats.base)" != "$want_base" ]; then
		why="$BASE changed"
	else
		for kv in "$@"; do
			if [ "$(label "$image" "${kv%%=*}")" != "${kv#*=}" ]; then
				why="${kv%%=*} changed"
			fi
		done
	fi
	if [ -z "$why" ]; then
		log "$image is up to date ($(size_of "$image")), kept"
		return
	fi
	local ctx=$work/ctx-$name args=() old
	old=$(image_id "$image" 2>/dev/null || true)
	rm -rf "$ctx"
	mkdir -p "$ctx"
	cp -a deploy/docker/"$name"/. "$ctx"/
	[ "$name" != broker ] || cp "$BIN" "$ctx/kitenats"
	# --force-rm: a failed step leaves no stopped container behind.
	args=(--force-rm --build-arg "BASE=$BASE" --label "org.kitenats.recipe=$want_recipe" --label "org.kitenats.base=$want_base")
	for kv in "$@"; do
		args+=(--label "$kv")
	done
	[ -z "$FORCE" ] || args+=(--no-cache)
	step "$image: docker build ($why; log: $work/build-$name.log)" \
		docker_build "$work/build-$name.log" "${args[@]}" -t "$image" "$ctx"
	rm -rf "$ctx"
	drop_old "$old"
	log "$image: $(size_of "$image")"
}

docker_build() { # LOG ARGS...
	local out=$1
	shift
	if ! docker build "$@" >"$out" 2>&1; then
		tail -n 30 "$out" >&2
		return 1
	fi
}

build_broker() {
	if [ ! -x "$BIN" ]; then
		echo "image.sh: $BIN is missing: run make build (make image does)" >&2
		exit 1
	fi
	local sum
	sum=$(sha256sum "$BIN" | cut -d' ' -f1)
	build broker "$BROKER" "org.kitenats.binary=$sum"
}

list() {
	docker image ls --filter 'reference=kitenats/*' \
		--format 'table {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}\t{{.CreatedSince}}'
}

if ! docker info >/dev/null 2>&1; then
	echo "image.sh: no Docker engine answers (docker info failed); no image built" >&2
	exit 1
fi
mkdir -p "$work"
[ $# -gt 0 ] || set -- all
for what in "$@"; do
	case $what in
	base) build_base ;;
	broker) build_base && build_broker ;;
	mariadb) build_base && build mariadb "$MARIADB" ;;
	zookeeper) build_base && build zookeeper "$ZOOKEEPER" ;;
	all) build_base && build_broker && build mariadb "$MARIADB" && build zookeeper "$ZOOKEEPER" ;;
	list) list; continue ;;
	*)
		echo "usage: $0 [all|base|broker|mariadb|zookeeper|list]..." >&2
		exit 2
		;;
	esac
done
for id in ${retry_drop[@]+"${retry_drop[@]}"}; do
	docker image rm "$id" >/dev/null 2>&1 || true
done
log "images ready in $((SECONDS - t_all)) s:"
list >&2
