# Sourced by tests/clients/run.sh and gui.sh: where causeway and the
# artifacts are, and a private temp dir the client user can enter (its
# home directories live there), removed on exit.
here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHON
if [ -z "${CAUSEWAY_BIN:-}" ]; then
	CAUSEWAY_BIN=$(cd "$here/../.." && pwd)/causeway
fi
export CAUSEWAY_BIN
CW_ARTIFACTS=${CW_ARTIFACTS:-$(pwd)/clients-artifacts}
export CW_ARTIFACTS
if [ "$(id -u)" != 0 ]; then
	echo "not ok - $(basename "$0") needs root (it runs the clients as another user)"
	exit 1
fi
TMPDIR=$(mktemp -d /tmp/cwclients.XXXXXX) || exit 1
chmod 755 "$TMPDIR"
export TMPDIR
trap '[ "${CWTEST_KEEP:-}" = 1 ] || rm -rf "$TMPDIR"' EXIT
