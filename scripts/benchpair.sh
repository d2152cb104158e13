#!/usr/bin/env bash
# benchpair.sh OLD NEW [PAIRS] [BENCH ARGS...]: runs `kitenats bench` with the
# old and the new binary in turn, PAIRS times (default 4), each time on a
# fresh RocksDB directory, and prints msgs/s and CPU per message of each run
# and the means. On a shared machine runs swing by more than most changes
# move; interleaving the pairs and comparing the means is how CONTRIBUTING.md
# asks to show that a change pays.
set -euo pipefail
old=${1:?usage: benchpair.sh OLD-BINARY NEW-BINARY [PAIRS] [BENCH ARGS...]}
new=${2:?usage: benchpair.sh OLD-BINARY NEW-BINARY [PAIRS] [BENCH ARGS...]}
pairs=${3:-4}
shift $(( $# < 3 ? $# : 3 ))
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-msgs 150000)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

run() { # binary → "msgs/s µs"
	rm -rf "$dir/db"
	# The kitenats row of the table: its name may have spaces (the store,
	# a backlog), so the columns are counted from the end of the line
	# (... msgs msgs/s MB/s ack-p50 ack-p99 deliver-p50 deliver-p99 CPU/msg cores).
	"$1" bench "${args[@]}" -db "rocksdb://$dir/db" 2>/dev/null |
		awk '/^kitenats /{cpu = $(NF-1); gsub("µs", "", cpu); print $(NF-7), cpu}'
}

declare -A sum_rate sum_cpu
for i in $(seq "$pairs"); do
	for side in old new; do
		bin=$old
		[ $side = new ] && bin=$new
		read -r rate cpu < <(run "$bin")
		printf '%-3s %2d  %8s msgs/s  %6s µs/msg\n' "$side" "$i" "$rate" "$cpu"
		sum_rate[$side]=$(awk -v a="${sum_rate[$side]:-0}" -v b="$rate" 'BEGIN{print a+b}')
		sum_cpu[$side]=$(awk -v a="${sum_cpu[$side]:-0}" -v b="$cpu" 'BEGIN{print a+b}')
	done
done
for side in old new; do
	awk -v s="$side" -v r="${sum_rate[$side]}" -v c="${sum_cpu[$side]}" -v n="$pairs" \
		'BEGIN{printf "%s mean: %.0f msgs/s, %.1f µs/msg\n", s, r/n, c/n}'
done
