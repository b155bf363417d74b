#!/bin/sh
# Installs what causeway needs on Debian 12.
#   contrib/install-deps.sh          build dependencies and a demo server
#   contrib/install-deps.sh --test   also everything the test suite runs
#   contrib/install-deps.sh --gui    also the graphical clients for tests/clients/gui.sh
# Run as root.  Daemons installed here are never started by the install:
# a policy-rc.d that forbids it is put in place for the install when the
# machine has none (and removed again afterwards).
set -eu

BUILD="autoconf automake make gcc pkg-config libexpat1-dev libevent-dev
libssl-dev libsqlite3-dev libcurl4-gnutls-dev libetpan-dev ca-certificates
libsystemd-dev"
DEMO="prosody prosody-modules python3 python3-slixmpp openssl procps inspircd"
TEST="clang libclang-rt-14-dev ejabberd sqlite3 git inspircd atheme-services
kannel kannel-extras smstools dovecot-imapd dovecot-lmtpd postfix curl
python3-cryptography dovecot-submissiond
debhelper lintian fakeroot dpkg-dev prometheus jabberd2 groff man-db systemd"

# Real-world mail for tests/unit/test_email_corpus (Python's email test
# messages and a bounce corpus).
TEST="$TEST libpython3.11-testsuite python3-flufl.bounce"
pkgs="$BUILD $DEMO"
# The terminal clients tests/clients drives; the graphical ones for gui.sh.
TEST="$TEST profanity poezio tmux"
GUI="xvfb xdotool imagemagick dbus gajim psi dino-im"
[ "${1:-}" = "--test" ] && pkgs="$pkgs $TEST"
[ "${1:-}" = "--gui" ] && pkgs="$pkgs $TEST $GUI"

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: run as root (apt-get needs it)" >&2
	exit 1
fi

added_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	added_policy=1
fi
trap '[ -n "$added_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT

export DEBIAN_FRONTEND=noninteractive
# Postfix would ask how to configure the system mailer: the tests run a
# private instance from their own directory, so the system gets none.
echo "postfix postfix/main_mailer_type select No configuration" |
	debconf-set-selections
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
echo "install-deps: installed $(echo $pkgs | wc -w) packages"
