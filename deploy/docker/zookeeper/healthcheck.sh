#!/bin/bash
# kitenats-zookeeper-health: "ruok" answered "imok" (bash's /dev/tcp: no nc
# in the image). ruok says the server runs, not that it has a quorum, which a
# standalone server always has once it serves.
exec 3<>/dev/tcp/127.0.0.1/2181 || exit 1
printf ruok >&3
read -r -t 3 -N 4 answer <&3 || true
[ "$answer" = imok ]
