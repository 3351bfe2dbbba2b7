#!/bin/sh
# The example configuration made ready for a system install: the database,
# the spool and the starter rules at their installed places, everything else
# as in etc/postern.conf (which lists every key; test_docs.py keeps it so).
# Fails, rather than installing a config that writes into the working
# directory, when a line it rewrites has changed shape.
# usage: sysconf.sh SRC CONFDIR STATEDIR SPOOLDIR > OUT
set -eu
src=$1 confdir=$2 statedir=$3 spooldir=$4

out=$(sed -e "s|^spool_dir = var/spool\$|spool_dir = $spooldir|" \
	-e "s|^path = var/postern.db\$|path = $statedir/postern.db|" \
	-e "/^\[rules\]/,/^\[/s|^#*file = .*\$|file = $confdir/rules.txt|" \
	-e "s|-c etc/postern.conf|-c $confdir/postern.conf|" \
	-e "/^\[proxy\]\$/i\\
# Installed for postern.service, which starts Postern as the user postern\\
# with the one capability to bind port 25: leave proxy.user empty.\\
" "$src")

for want in "spool_dir = $spooldir" "path = $statedir/postern.db" \
    "file = $confdir/rules.txt" "leave proxy.user empty"; do
	case "$out" in
	*"$want"*) ;;
	*) echo "sysconf.sh: $src no longer has the line to make '$want'" >&2; exit 1 ;;
	esac
done
printf '%s\n' "$out"
