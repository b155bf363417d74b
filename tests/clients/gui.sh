#!/bin/sh
# On demand, not in CI: Gajim, Psi and Dino driven under Xvfb with xdotool
# (see gui.py for why: the clicks go to screen positions of Debian 12's
# versions).  Prints TAP; screenshots go to $CW_ARTIFACTS, or with --docs
# to docs/clients/.  Run as root; needs xvfb, xdotool, imagemagick,
# dbus, gajim, psi, dino-im (contrib/install-deps.sh --gui); Dino runs
# in its own network and mount namespaces (unshare).
#
#   CAUSEWAY_BIN=/path/to/causeway tests/clients/gui.sh [--docs] [gajim] [psi] [dino]
. "$(dirname "$0")/common.sh"
"$PYTHON" "$here/gui.py" "$@"
