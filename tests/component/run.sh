#!/bin/bash
# Runs every component test (tests/component/test_*.py) against
# $CAUSEWAY_BIN and exits non-zero if any failed; their TAP output
# passes through.
set -u
here=$(cd "$(dirname "$0")" && pwd)
rc=0
for t in "$here"/test_*.py; do
	echo "# ---- $(basename "$t")"
	python3 "$t" || rc=1
done
exit $rc
