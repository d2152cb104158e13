#!/bin/bash
# kitenats-healthcheck: healthy when GET /healthz on the admin port answers
# 200; with the admin port off (KITENATS_PPORT=-1), when the NATS port
# accepts a connection and greets with INFO. No curl in the image: bash's
# /dev/tcp.
set -u
port=${KITENATS_PPORT:-13801}
if [ "$port" != -1 ]; then
	exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
	printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
	read -r -t 3 _ code _ <&3 || exit 1
	[ "$code" = 200 ]
	exit
fi
nats=${KITENATS_NATS:-0.0.0.0:4222}
exec 3<>"/dev/tcp/127.0.0.1/${nats##*:}" || exit 1
read -r -t 3 word _ <&3 || exit 1
[ "$word" = INFO ]
