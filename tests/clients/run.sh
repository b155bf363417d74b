#!/bin/sh
# The stock-client tests: profanity and poezio driven in tmux as a person
# would (tests/clients/test_*.py), against a real Prosody, InspIRCd and
# causeway on 127.0.0.1.  Prints TAP; exit status non-zero if a script
# failed.  Run as root (the clients run as an unprivileged user, created
# if missing).
#
#   tests/clients/run.sh                       # causeway from ../../causeway
#   CAUSEWAY_BIN=/path/to/causeway tests/clients/run.sh [test_poezio.py ...]
# Environment: CW_ARTIFACTS (where screen captures go, default
# ./clients-artifacts), CWTEST_KEEP=1 keeps the temp dirs.
# The graphical clients (Gajim, Psi, Dino) are in tests/clients/gui.sh.
here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
if [ -z "${CAUSEWAY_BIN:-}" ]; then
	CAUSEWAY_BIN=$(cd "$here/../.." && pwd)/causeway
fi
export CAUSEWAY_BIN
CW_ARTIFACTS=${CW_ARTIFACTS:-$(pwd)/clients-artifacts}
export CW_ARTIFACTS

if [ ! -x "$CAUSEWAY_BIN" ]; then
	echo "not ok - no causeway binary at $CAUSEWAY_BIN (build it, or set CAUSEWAY_BIN)"
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "not ok - tests/clients/run.sh needs root (it runs the clients as another user)"
	exit 1
fi

if [ $# -eq 0 ]; then
	set -- "$here"/test_*.py
else
	for i in $(seq $#); do
		t=$1; shift
		case $t in */*) ;; *) t=$here/$t ;; esac
		set -- "$@" "$t"
	done
fi

# A private temp dir the client user can enter (its homes live there).
TMPDIR=$(mktemp -d /tmp/cwclients.XXXXXX) || exit 1
chmod 755 "$TMPDIR"
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

failed=""
for t in "$@"; do
	echo "# ---- $(basename "$t")"
	start=$(date +%s)
	if "$PYTHON" "$t"; then
		echo "# ---- $(basename "$t"): PASS ($(( $(date +%s) - start )) s)"
	else
		rc=$?
		echo "# ---- $(basename "$t"): FAIL (exit $rc, $(( $(date +%s) - start )) s)"
		failed="$failed $(basename "$t")"
	fi
done
echo "# clients: screen captures in $CW_ARTIFACTS"
if [ -n "$failed" ]; then
	echo "# clients: FAILED:$failed"
	exit 1
fi
exit 0
