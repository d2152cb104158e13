#!/usr/bin/env bash
# mariadb.sh: start or stop a private MariaDB instance for tests.
#
#   scripts/mariadb.sh start DIR [PORT]   # default PORT 13306
#   scripts/mariadb.sh stop  DIR [PORT]
#   scripts/mariadb.sh status DIR [PORT]
#
# start initialises DIR/data on first use (root with an empty password, on
# 127.0.0.1 only), writes DIR/my.cnf, starts mariadbd in the background, waits
# (at most ~30 s) until it answers a ping and prints the DSN on stdout; the
# address to export is KITENATS_MYSQL_ADDR=127.0.0.1:PORT. Both commands are
# idempotent: starting a running instance or stopping a stopped one succeeds.
# Works as root (mariadbd runs with --user=root) and as an ordinary user.
set -euo pipefail

usage() {
	echo "usage: $0 start|stop|status DIR [PORT]" >&2
	exit 2
}

[[ $# -ge 2 ]] || usage
cmd=$1
dir=$2
port=${3:-13306}
[[ $port =~ ^[0-9]+$ ]] || { echo "mariadb.sh: bad port $port" >&2; exit 2; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cnf=$dir/my.cnf
sock=$dir/mysqld.sock
pidfile=$dir/mysqld.pid
log=$dir/mysqld.log
user=$(id -un)

ping() {
	mariadb-admin --no-defaults --protocol=socket --socket="$sock" -uroot \
		--connect-timeout=2 ping >/dev/null 2>&1
}

running_pid() {
	local pid
	[[ -f $pidfile ]] || return 1
	pid=$(cat "$pidfile" 2>/dev/null) || return 1
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

write_cnf() {
	cat >"$cnf" <<EOF
[mariadbd]
user=$user
datadir=$dir/data
socket=$sock
pid-file=$pidfile
log-error=$log
port=$port
bind-address=127.0.0.1
skip-name-resolve
skip-log-bin
character-set-server=utf8mb4
collation-server=utf8mb4_bin
max_connections=200
max_allowed_packet=64M
innodb_buffer_pool_size=128M
innodb_log_file_size=64M
innodb_log_buffer_size=16M
innodb_flush_log_at_trx_commit=1
innodb_flush_method=O_DIRECT
performance_schema=OFF

[client]
port=$port
socket=$sock
EOF
}

start() {
	if running_pid >/dev/null && ping; then
		local running
		running=$(sed -n 's/^port=//p' "$cnf" | head -n 1)
		if [[ -n $running && $running != "$port" ]]; then
			echo "mariadb.sh: $dir already runs on port $running, not $port" >&2
			exit 1
		fi
		echo "root@tcp(127.0.0.1:$port)/"
		return 0
	fi
	write_cnf
	if [[ ! -d $dir/data/mysql ]]; then
		mariadb-install-db --no-defaults --auth-root-authentication-method=normal \
			--user="$user" --datadir="$dir/data" --skip-test-db >"$dir/install.log" 2>&1 || {
			echo "mariadb.sh: mariadb-install-db failed, see $dir/install.log" >&2
			exit 1
		}
	fi
	nohup mariadbd --defaults-file="$cnf" --user="$user" >>"$log" 2>&1 </dev/null &
	local i
	for ((i = 0; i < 300; i++)); do
		if ping; then
			echo "root@tcp(127.0.0.1:$port)/"
			return 0
		fi
		if ! kill -0 $! 2>/dev/null; then
			echo "mariadb.sh: mariadbd exited, see $log" >&2
			tail -n 20 "$log" >&2 || true
			exit 1
		fi
		sleep 0.1
	done
	echo "mariadb.sh: mariadbd did not answer within 30 s, see $log" >&2
	exit 1
}

stop() {
	local pid
	pid=$(running_pid) || { rm -f "$pidfile"; return 0; }
	mariadb-admin --no-defaults --protocol=socket --socket="$sock" -uroot shutdown \
		>/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
	local i
	for ((i = 0; i < 600; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "mariadb.sh: mariadbd (pid $pid) did not stop within 60 s" >&2
	exit 1
}

case $cmd in
start) start ;;
stop) stop ;;
status)
	if running_pid >/dev/null && ping; then
		echo "running on 127.0.0.1:$port"
	else
		echo "stopped"
		exit 1
	fi
	;;
*) usage ;;
esac
