#!/bin/sh
# causeway vs biboumi benchmark (issue 7).  One command:
#
#   contrib/bench/run.sh [--users N] [--messages M] [--fanout K] [--runs R]
#                        [--quick] [--no-history] [--out FILE.json] [--keep]
#
# Installs nothing.  Needs (Debian packages): prosody, inspircd, biboumi,
# python3 (standard library only), util-linux (prlimit); gnuplot is
# optional (plots: apt-get install gnuplot-nox), and so are dovecot-imapd,
# dovecot-lmtpd, postfix (email row) and kannel, kannel-extras (SMS row).  The causeway binary is build/causeway, or
# --causeway PATH / $CAUSEWAY_BIN.  Everything runs on 127.0.0.1 in a temp
# dir; every process started is stopped by PID, also on Ctrl-C.
# Exit status: 0 when it ran (whatever the figures), 1 when it could not.
# See contrib/bench/README.md.
set -u
here=$(cd "$(dirname "$0")" && pwd)

missing=""
need() {   # need COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}
need python3 python3
need prosody prosody
need prosodyctl prosody
need inspircd inspircd
need biboumi biboumi
need prlimit util-linux
if [ -n "$missing" ]; then
	echo "bench: missing Debian packages:$missing" >&2
	echo "bench: install them with: apt-get install --no-install-recommends$missing" >&2
	exit 1
fi

# Hundreds of sockets in each process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec python3 "$here/bench.py" "$@"
