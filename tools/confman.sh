#!/bin/sh
# Write postern.conf(5): the template with its KEYS section made from
# README.md's configuration table (| `section.key` | default | meaning |),
# one subsection per INI section in the table's order. The README table is
# the one test_docs.py holds equal to `postern configtest -v`, so a key added
# there reaches the man page with no second list to keep.
# usage: confman.sh TEMPLATE README.md > postern.conf.5
set -eu
tmpl=$1 readme=$2

keys() {
	awk '
	function roff(s) {
		gsub(/\\/, "\\e", s)
		gsub(/\\e\|/, "|", s)		# markdown'"'"'s escaped pipe
		while (match(s, /`[^`]*`/))
			s = substr(s, 1, RSTART - 1) "\\fB" substr(s, RSTART + 1, RLENGTH - 2) \
			    "\\fR" substr(s, RSTART + RLENGTH)
		gsub(/-/, "\\-", s)
		return s
	}
	/^\| `[a-z_0-9]+\.[a-z_0-9]+` \|/ {
		line = $0
		gsub(/\\\|/, "\001", line)	# keep escaped pipes out of the split
		n = split(line, f, "|")
		for (i = 2; i < n; i++) {
			gsub(/\001/, "\\|", f[i])
			sub(/^ +/, "", f[i]); sub(/ +$/, "", f[i])
		}
		key = f[2]; gsub(/`/, "", key)
		sec = key; sub(/\..*/, "", sec)
		name = key; sub(/^[^.]*\./, "", name)
		if (sec != last) {
			printf ".SS \"[%s]\"\n", sec
			last = sec
		}
		# The tag reads like the line in the file: "name = default".
		def = f[3] == "(empty)" ? "" : roff(f[3])
		sub(/^\\fB/, "\\fI", def)
		# Long cipher lists may break after a colon (\: is an optional break).
		gsub(/:/, ":\\:", def)
		printf ".TP\n\\fB%s\\fR = %s\n", roff(name), def
		printf "\\&%s\n", roff(f[4])
		nkeys++
	}
	END { if (nkeys == 0) { print "confman.sh: no keys in the README table" > "/dev/stderr"; exit 1 } }
	' "$readme"
}

# ENVIRON, not -v: awk would read the roff escapes in -v as its own.
KEYS=$(keys) awk '$0 == ".\\\" @KEYS@" { print ENVIRON["KEYS"]; next } { print }' "$tmpl"
