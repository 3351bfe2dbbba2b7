#!/bin/sh
# Install a configuration file without ever replacing the admin's: when
# DEST exists and differs, the new file goes beside it as DEST.new.
# usage: install-conf.sh SRC DEST
set -eu
src=$1 dest=$2

if [ -e "$dest" ]; then
	cmp -s "$src" "$dest" && exit 0
	install -m 0644 "$src" "$dest.new"
	echo "install: kept your $dest; the new one is $dest.new" >&2
else
	install -m 0644 "$src" "$dest"
fi
