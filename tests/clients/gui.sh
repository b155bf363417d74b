#!/bin/sh
# On demand, not in CI: Gajim, Psi and Dino driven under Xvfb with xdotool (see
# gui.py for why: the clicks go to screen positions of Debian 12's
# versions).  Prints TAP; screenshots go to $CW_ARTIFACTS, or with --docs
# to docs/clients/.  Run as root; needs xvfb, xdotool, imagemagick,
# dbus, gajim, psi, dino-im (contrib/install-deps.sh --gui); Dino runs
# in its own network and mount namespaces (unshare).
#
#   CAUSEWAY_BIN=/path/to/causeway tests/clients/gui.sh [--docs] [gajim] [psi] [dino]
here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
if [ -z "${CAUSEWAY_BIN:-}" ]; then
	CAUSEWAY_BIN=$(cd "$here/../.." && pwd)/causeway
fi
export CAUSEWAY_BIN
CW_ARTIFACTS=${CW_ARTIFACTS:-$(pwd)/clients-artifacts}
export CW_ARTIFACTS
# A private temp dir the client user can enter (its homes live there).
TMPDIR=$(mktemp -d /tmp/cwclients.XXXXXX) || exit 1
chmod 755 "$TMPDIR"
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
"$PYTHON" "$here/gui.py" "$@"
