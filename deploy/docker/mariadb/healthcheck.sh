#!/bin/bash
# kitenats-mariadb-health: the server answers on its socket. mariadb-admin
# ping succeeds even when access is denied (the server is alive), so no
# password is needed here.
exec mariadb-admin --socket=/run/mysqld/mysqld.sock --connect-timeout=2 ping --silent >/dev/null 2>&1
