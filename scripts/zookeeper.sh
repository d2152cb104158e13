#!/usr/bin/env bash
# zookeeper.sh: start or stop a private ZooKeeper (Debian's 3.8 package) for tests.
#
#   scripts/zookeeper.sh start  DIR [PORT]   # default PORT 12181
#   scripts/zookeeper.sh stop   DIR [PORT]
#   scripts/zookeeper.sh status DIR [PORT]
#
# start writes DIR/conf/zoo.cfg (data in DIR/data, client port on 127.0.0.1
# only, no AdminServer, no four-letter-word commands) and DIR/conf/log4j.properties
# (log in DIR/logs/zookeeper.log), starts QuorumPeerMain in the background
# (pid in DIR/zookeeper.pid) and waits at most ~30 s until a real client
# session can be opened. It then prints the address to export:
#
#   scripts/zookeeper.sh start /tmp/zk 2181 && export KITENATS_ZK_ADDR=127.0.0.1:2181
#
# (KiteQ clients default to 2181; the default here, 12181, avoids clashing
# with a system ZooKeeper.)
#
# Readiness is checked with ZooKeeper's own client handshake (ConnectRequest
# over bash's /dev/tcp, then a CloseSession), not with an open port (the port
# opens before the server can serve sessions) and not with `srvr`/`ruok`
# (four-letter words are off, and nc is not installed everywhere).
#
# The server is started with plain `java`, never Debian's zkServer.sh, which
# also opens a JMX port on every interface. Both commands are idempotent:
# starting a running instance or stopping a stopped one succeeds. stop sends
# SIGTERM, waits up to 20 s, then SIGKILL.
set -euo pipefail

usage() {
	echo "usage: $0 start|stop|status DIR [PORT]" >&2
	exit 2
}

[[ $# -ge 2 ]] || usage
cmd=$1
dir=$2
port=${3:-12181}
[[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || {
	echo "zookeeper.sh: bad port $port" >&2
	exit 2
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/conf
pidfile=$dir/zookeeper.pid
logdir=$dir/logs
out=$logdir/stdout.log

# The jars Debian's zookeeper package installs. zookeeper.jar's manifest
# Class-Path pulls in the rest (netty, jute, slf4j-api, ...); the log4j 1.2
# binding is not in it, so it is named here.
java_dir=/usr/share/java
classpath_jars=(zookeeper.jar slf4j-log4j12.jar log4j-1.2.jar)

java_classpath() {
	local cp=$conf jar
	for jar in "${classpath_jars[@]}"; do
		[[ -f $java_dir/$jar ]] || {
			echo "zookeeper.sh: $java_dir/$jar is missing (apt-get install -y zookeeper)" >&2
			exit 1
		}
		cp+=":$java_dir/$jar"
	done
	echo "$cp"
}

# running_pid prints the pid of our server if it is alive. The command line
# must name our zoo.cfg, so a recycled pid is never taken for ours.
running_pid() {
	local pid
	[[ -f $pidfile ]] || return 1
	pid=$(cat "$pidfile" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$conf/zoo.cfg" || return 1
	echo "$pid"
}

# session_ok opens a real ZooKeeper session on 127.0.0.1:$port and closes it.
# ConnectRequest: length 45, protocolVersion 0, lastZxidSeen 0, timeOut
# 5000 ms, sessionId 0, passwd of 16 zero bytes, readOnly false. The
# ConnectResponse (41 bytes with its length) carries
# the new session id at bytes 12..19 (after length, protocolVersion and
# timeOut); 0 means no session. Then CloseSession (xid 1, opcode -11).
session_ok() {
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		z4="\x00\x00\x00\x00"
		printf "\x00\x00\x00\x2d${z4}${z4}${z4}\x00\x00\x13\x88${z4}${z4}\x00\x00\x00\x10${z4}${z4}${z4}${z4}\x00" >&3
		hex=$(head -c 20 <&3 | od -An -v -tx1 | tr -d " \n")
		printf "\x00\x00\x00\x08\x00\x00\x00\x01\xff\xff\xff\xf5" >&3 || true
		# Wait for the CloseSession reply (header of 16 bytes, after the
		# rest of the 41-byte ConnectResponse) so the session ends now
		# instead of expiring 5 s later.
		head -c 37 <&3 >/dev/null || true
		exec 3<&-
		[[ ${#hex} -eq 40 && ${hex:24:16} != 0000000000000000 ]]
	' _ "$port" 2>/dev/null
}

write_conf() {
	mkdir -p "$conf" "$dir/data" "$logdir"
	cat >"$conf/zoo.cfg" <<EOF
# Written by scripts/zookeeper.sh; rewritten on every start.
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=200
# Sessions of 4-40 s (KiteQ asks for 5 s).
minSessionTimeout=4000
maxSessionTimeout=40000
admin.enableServer=false
# No four-letter-word commands beyond srvr, which ZooKeeper always allows;
# readiness is checked with a real session instead.
4lw.commands.whitelist=
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
	cat >"$conf/log4j.properties" <<EOF
# Written by scripts/zookeeper.sh.
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.RollingFileAppender
log4j.appender.FILE.File=$logdir/zookeeper.log
log4j.appender.FILE.MaxFileSize=10MB
log4j.appender.FILE.MaxBackupIndex=2
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n
EOF
}

start() {
	local pid
	if pid=$(running_pid); then
		if session_ok; then
			echo "127.0.0.1:$port"
			return 0
		fi
	else
		rm -f "$pidfile"
	fi
	if [[ -z ${pid:-} ]]; then
		if session_ok; then
			echo "zookeeper.sh: something else already serves ZooKeeper on 127.0.0.1:$port" >&2
			exit 1
		fi
		write_conf
		local cp
		cp=$(java_classpath)
		# No -Dcom.sun.management.jmxremote: no JMX port. Small heap, serial
		# GC: this is a test server on a 2-core machine.
		nohup java -Xms64m -Xmx256m -XX:+UseSerialGC \
			-Djava.net.preferIPv4Stack=true \
			-Dzookeeper.log.dir="$logdir" \
			-Dzookeeper.jmx.log4j.disable=true \
			-Dzookeeper.admin.enableServer=false \
			-cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$conf/zoo.cfg" \
			>>"$out" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$pidfile"
	fi
	local i
	for ((i = 0; i < 300; i++)); do
		if session_ok; then
			echo "127.0.0.1:$port"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$pidfile"
			echo "zookeeper.sh: ZooKeeper exited, see $logdir" >&2
			tail -n 20 "$logdir/zookeeper.log" "$out" >&2 2>/dev/null || true
			exit 1
		fi
		sleep 0.1
	done
	echo "zookeeper.sh: no ZooKeeper session on 127.0.0.1:$port within 30 s (pid $pid), see $logdir" >&2
	exit 1
}

stop() {
	local pid i
	pid=$(running_pid) || {
		rm -f "$pidfile"
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || {
			rm -f "$pidfile"
			return 0
		}
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || {
			rm -f "$pidfile"
			return 0
		}
		sleep 0.1
	done
	echo "zookeeper.sh: ZooKeeper (pid $pid) did not stop" >&2
	exit 1
}

case $cmd in
start) start ;;
stop) stop ;;
status)
	if running_pid >/dev/null && session_ok; then
		echo "running on 127.0.0.1:$port"
	else
		echo "stopped"
		exit 1
	fi
	;;
*) usage ;;
esac
