#!/bin/bash
# kitenats-zookeeper: writes /conf/zoo.cfg and /conf/log4j.properties, then
# runs QuorumPeerMain in the foreground (PID 1; SIGTERM stops it), as
# scripts/zookeeper.sh does on the host: plain java, no JMX port, no
# AdminServer, logs on the console (docker logs), data in the /data volume.
#
#   ZK_HEAP          -Xmx of the JVM, default 256m
#   ZK_CFG_EXTRA     lines appended to zoo.cfg (e.g. server.N=… and a /data/myid
#                    for an ensemble; standalone by default)
#
# Arguments are passed to java before the main class (e.g. -Dzookeeper.snapCount=1000).
set -euo pipefail

cat >/conf/zoo.cfg <<CFG
# Written by kitenats-zookeeper at every start.
tickTime=2000
initLimit=10
syncLimit=5
dataDir=/data
clientPort=2181
clientPortAddress=0.0.0.0
maxClientCnxns=200
# Sessions of 4-40 s (KiteQ asks for 5 s).
minSessionTimeout=4000
maxSessionTimeout=40000
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
${ZK_CFG_EXTRA:-}
CFG
cat >/conf/log4j.properties <<'LOG'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
# Not one INFO line per HEALTHCHECK ("Processing ruok command").
log4j.logger.org.apache.zookeeper.server.NIOServerCnxn=WARN
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n
LOG

cp=/conf
for jar in zookeeper.jar slf4j-log4j12.jar log4j-1.2.jar; do
	cp+=:/usr/share/java/$jar
done
exec java -Xms64m -Xmx"${ZK_HEAP:-256m}" -XX:+UseSerialGC \
	-Djava.net.preferIPv4Stack=true \
	-Dzookeeper.jmx.log4j.disable=true \
	-Dzookeeper.admin.enableServer=false \
	"$@" \
	-cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain /conf/zoo.cfg
