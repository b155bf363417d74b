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
. "$(dirname "$0")/common.sh"
if [ $# -eq 0 ]; then
	set -- "$here"/test_*.py
else
	for i in $(seq $#); do
		t=$1; shift
		case $t in */*) ;; *) t=$here/$t ;; esac
		set -- "$@" "$t"
	done
fi
echo "# clients: screen captures in $CW_ARTIFACTS"
# The e2e runner runs the scripts one by one and sums them up.
sh "$here/../e2e/run.sh" "$@"
