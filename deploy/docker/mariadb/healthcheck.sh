#!/bin/bash
# kitenats-mariadb-health: the server answers on its socket, where the OS
# user root logs in as root@localhost without a password (unix_socket).
exec mariadb-admin --socket=/run/mysqld/mysqld.sock --connect-timeout=2 ping --silent >/dev/null 2>&1
