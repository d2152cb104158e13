#!/bin/bash
# kitenats-mariadb: initialises /var/lib/mysql on first start, then runs
# mariadbd in the foreground (PID 1, as user mysql; SIGTERM shuts it down).
#
#   MARIADB_ROOT_PASSWORD           root's password, for root@localhost and root@'%' (required,
#                                   unless MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1)
#   MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1   root with an empty password (tests only)
#   MARIADB_USER, MARIADB_PASSWORD  an extra user@'%' with every privilege on the store's
#                                   databases (MARIADB_DATABASE and MARIADB_DATABASE_*)
#   MARIADB_DATABASE                the MySQL store's db= prefix, default kite: the databases
#   MARIADB_SHARDS                  kite_0 … kite_<MARIADB_SHARDS-1> are created (default 4,
#                                   the store's shardnum); the store creates its tables itself
#
# These apply only when the volume is empty; afterwards the data in it rules.
# Arguments are passed to mariadbd (e.g. --innodb-buffer-pool-size=1G).
set -euo pipefail

datadir=/var/lib/mysql
db=${MARIADB_DATABASE:-kite}
shards=${MARIADB_SHARDS:-4}
[[ $db =~ ^[A-Za-z0-9_]+$ ]] || { echo "kitenats-mariadb: MARIADB_DATABASE: letters, digits and _ only" >&2; exit 1; }
[[ $shards =~ ^[0-9]+$ ]] || { echo "kitenats-mariadb: MARIADB_SHARDS: a number" >&2; exit 1; }

sql_string() { # quotes $1 as an SQL string literal
	local s=${1//\\/\\\\}
	printf "'%s'" "${s//\'/\'\'}"
}

init() {
	if [ -z "${MARIADB_ROOT_PASSWORD:-}" ] && [ "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-}" != 1 ]; then
		echo "kitenats-mariadb: set MARIADB_ROOT_PASSWORD (or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1)" >&2
		exit 1
	fi
	echo "kitenats-mariadb: initialising $datadir" >&2
	mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
		--auth-root-authentication-method=normal >/tmp/install.log 2>&1 || {
		cat /tmp/install.log >&2
		exit 1
	}
	# A private server on the socket only, to run the setup SQL.
	mariadbd --user=mysql --skip-networking --socket=/run/mysqld/init.sock \
		--pid-file=/run/mysqld/init.pid &
	local pid=$! i
	for ((i = 0; i < 300; i++)); do
		mariadb-admin --no-defaults --socket=/run/mysqld/init.sock -uroot ping >/dev/null 2>&1 && break
		kill -0 "$pid" 2>/dev/null || { echo "kitenats-mariadb: mariadbd exited during setup" >&2; exit 1; }
		sleep 0.1
	done
	local pw sql i
	pw=$(sql_string "${MARIADB_ROOT_PASSWORD:-}")
	# root@localhost: the password, or the socket as the OS user root (the
	# HEALTHCHECK and `docker exec … mariadb` need no password). The other
	# root accounts mariadb-install-db makes (no password) are dropped.
	sql="ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD($pw);
DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1', 'root'@'$(hostname)';
DELETE FROM mysql.proxies_priv WHERE User = 'root' AND Host NOT IN ('localhost', '%');
CREATE USER 'root'@'%' IDENTIFIED BY $pw;
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
"
	for ((i = 0; i < shards; i++)); do
		sql+="CREATE DATABASE IF NOT EXISTS \`${db}_$i\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
"
	done
	if [ -n "${MARIADB_USER:-}" ]; then
		local u
		u=$(sql_string "$MARIADB_USER")
		sql+="CREATE USER $u@'%' IDENTIFIED BY $(sql_string "${MARIADB_PASSWORD:-}");
GRANT ALL ON \`${db//_/\\_}\`.* TO $u@'%';
GRANT ALL ON \`${db//_/\\_}\\_%\`.* TO $u@'%';
"
	fi
	sql+="FLUSH PRIVILEGES;"
	mariadb --no-defaults --socket=/run/mysqld/init.sock -uroot <<<"$sql"
	kill -TERM "$pid"
	wait "$pid" || true
	echo "kitenats-mariadb: initialised (databases ${db}_0..${db}_$((shards - 1))${MARIADB_USER:+, user $MARIADB_USER})" >&2
}

if [ "$(id -u)" = 0 ]; then
	chown mysql:mysql "$datadir" /run/mysqld
fi
[ -d "$datadir/mysql" ] || init
exec mariadbd --user=mysql "$@"
