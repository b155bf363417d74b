#!/bin/sh
# Run every end-to-end test (tests/e2e/test_*.py) with Debian's python3,
# which has python3-slixmpp, and print their TAP output.  Exit status is
# non-zero if any test script failed.  Needs only 127.0.0.1.
#
#   tests/e2e/run.sh                     # causeway from ../../causeway
#   CAUSEWAY_BIN=/path/to/build/causeway tests/e2e/run.sh
#   tests/e2e/run.sh tests/e2e/test_attach.py     # selected scripts
# Environment: PYTHON (default /usr/bin/python3), CWTEST_KEEP=1 keeps the
# temp dirs, CWTEST_XMPP_LOG=DEBUG traces the XMPP client on stderr.
here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
if [ -z "${CAUSEWAY_BIN:-}" ]; then
	CAUSEWAY_BIN=$(cd "$here/../.." && pwd)/causeway
fi
export CAUSEWAY_BIN

if ! "$PYTHON" -c 'import slixmpp' 2>/dev/null; then
	echo "not ok - $PYTHON cannot import slixmpp (apt-get install python3-slixmpp)"
	exit 1
fi
if [ ! -x "$CAUSEWAY_BIN" ]; then
	echo "not ok - no causeway binary at $CAUSEWAY_BIN (build it, or set CAUSEWAY_BIN)"
	exit 1
fi

if [ $# -eq 0 ]; then
	set -- "$here"/test_*.py        # the shell sorts the glob
	[ -e "$1" ] || set --
fi

failed=""
total=0
for t in "$@"; do
	total=$((total + 1))
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

if [ "$total" -eq 0 ]; then
	echo "not ok - no tests found in $here"
	exit 1
fi
if [ -n "$failed" ]; then
	echo "# e2e: FAILED:$failed"
	exit 1
fi
echo "# e2e: all $total test scripts passed"
exit 0
