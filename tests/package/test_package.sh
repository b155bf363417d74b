#!/bin/bash
# The Debian package, as an operator meets it: build it from a clean copy
# of the tree (dpkg-buildpackage -us -uc -b; nothing reused from any build
# directory), lint it, install it, start the installed causeway as
# _causeway with the packaged configuration (no component) and wait for
# READY=1, check the unit with systemd-analyze (verify; security rated
# 2.5 or lower), upgrade it (the operator's edits and the store survive),
# purge it.  Prints TAP.  Needs root, debhelper, lintian, systemd (for
# systemd-analyze) and python3.
#
#   tests/package/test_package.sh            build, then test
#   CW_PKG_DIR=DIR  keep the build in DIR (default: a temp dir, removed)
#   CW_PKG_JOBS=N   parallel compile jobs (default 1: the suite runs this
#                   beside the fuzzers)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
n=0
failed=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"
	else
		failed=$((failed + 1))
		echo "not ok $n - $2"
		[ -n "${3:-}" ] && [ -s "$3" ] && tail -n "${4:-25}" "$3" | sed 's/^/#   /'
	fi
}
finish() { echo "1..$n"; [ "$failed" = 0 ]; exit $?; }

if [ "$(id -u)" != 0 ]; then
	echo "not ok 1 - the package test needs root (it installs the package)"
	echo "1..1"
	exit 1
fi
for tool in dpkg-buildpackage dh lintian systemd-analyze python3; do
	if ! command -v "$tool" > /dev/null; then
		echo "not ok 1 - $tool is not installed (contrib/install-deps.sh --test)"
		echo "1..1"
		exit 1
	fi
done

work=${CW_PKG_DIR:-$(mktemp -d /tmp/cw-pkg.XXXXXX)}
mkdir -p "$work"
[ -z "${CW_PKG_DIR:-}" ] && trap 'rm -rf "$work"' EXIT
src=$work/causeway
rm -rf "$src"
mkdir -p "$src"

# A clean copy: the files git knows (or, outside a checkout, the tree
# without build directories and generated files).
if git -C "$top" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
	(cd "$top" && git ls-files -co --exclude-standard -z |
		tar --null -cf - -T - 2> /dev/null) | tar -xf - -C "$src"
else
	(cd "$top" && tar --exclude='./build*' --exclude=./autom4te.cache \
		--exclude=./config.status --exclude='*.o' -cf - .) | tar -xf - -C "$src"
fi
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)
deb=$work/causeway_${version}_${arch}.deb

t0=$(date +%s)
(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=${CW_PKG_JOBS:-1}" \
	dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1
rc=$?
[ "$rc" = 0 ] && [ -f "$deb" ] || rc=1
ok $rc "dpkg-buildpackage -us -uc -b builds $(basename "$deb") ($(( $(date +%s) - t0 )) s)" "$work/build.log" 40
[ "$rc" = 0 ] || finish

lintian --tag-display-limit 0 "$work/causeway_${version}_${arch}.changes" > "$work/lintian.log" 2>&1
grep '^E:' "$work/lintian.log" > "$work/lintian.errors"
ok "$([ -s "$work/lintian.errors" ] && echo 1 || echo 0)" \
	"lintian reports no error ($(grep -c '^W:' "$work/lintian.log") warnings)" "$work/lintian.errors"
grep '^W:' "$work/lintian.log" | sed 's/^/# /'

# A previous run may have left the package installed.
dpkg --purge causeway > /dev/null 2>&1
export DEBIAN_FRONTEND=noninteractive
dpkg -i "$deb" > "$work/install.log" 2>&1
ok $? "dpkg -i installs it" "$work/install.log"

ok "$(getent passwd _causeway > /dev/null && echo 0 || echo 1)" "the system user _causeway exists"
st=$(stat -c '%a %U %G' /var/lib/causeway 2> /dev/null)
ok "$([ "$st" = "700 _causeway _causeway" ] && echo 0 || echo 1)" \
	"/var/lib/causeway is 0700 _causeway ($st)"
st=$(stat -c '%a %U %G' /etc/causeway/causeway.conf 2> /dev/null)
ok "$([ "$st" = "640 root _causeway" ] && echo 0 || echo 1)" \
	"/etc/causeway/causeway.conf is 0640 root:_causeway ($st)"
ok "$(dpkg-query -W -f='${Conffiles}' causeway | grep -q '/etc/causeway/causeway.conf' && echo 0 || echo 1)" \
	"/etc/causeway/causeway.conf is a conffile"
missing=""
for f in /usr/share/man/man8/causeway.8.gz /usr/share/man/man5/causeway.conf.5.gz \
	/lib/systemd/system/causeway.service \
	/usr/share/doc/causeway/examples/causeway.conf.example \
	/usr/share/doc/causeway/examples/prosody.cfg.lua.example \
	/usr/share/doc/causeway/examples/ejabberd.yml.example \
	/usr/share/doc/causeway/examples/jabberd2.xml.example \
	/usr/share/doc/causeway/examples/identd.conf; do
	[ -f "$f" ] || missing="$missing $f"
done
ok "$([ -z "$missing" ] && echo 0 || echo 1)" "manual pages, unit and examples installed${missing:+ (missing:$missing)}"
grep -Ev '^\s*([;#]|$)' /etc/causeway/causeway.conf > "$work/active.conf"
ok "$(grep -q '^\[component' "$work/active.conf" && echo 1 || echo 0)" \
	"the packaged configuration enables no component"
runuser -u _causeway -- /usr/bin/causeway -c /etc/causeway/causeway.conf --check-config \
	> "$work/check.log" 2>&1
ok $? "the packaged configuration passes --check-config as _causeway" "$work/check.log"

# The installed causeway, as the unit runs it: user _causeway, the
# packaged configuration, a NOTIFY_SOCKET this test opens.
python3 - "$work" > "$work/start.log" 2>&1 <<'PY'
import os, signal, socket, subprocess, sys, time
work = sys.argv[1]
path = os.path.join(work, "notify.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(work, 0o755)
os.chmod(path, 0o777)
env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="2000000")
# setpriv execs causeway itself, so SIGTERM reaches it (runuser would
# take the signal and kill its session).
p = subprocess.Popen(["setpriv", "--reuid=_causeway", "--regid=_causeway",
                      "--init-groups", "/usr/bin/causeway",
                      "-c", "/etc/causeway/causeway.conf"], env=env,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
got = []
deadline = time.time() + 15
s.settimeout(0.5)
while time.time() < deadline and not ("READY=1" in got and "WATCHDOG=1" in got):
    try:
        got += s.recv(4096).decode().split("\n")
    except socket.timeout:
        if p.poll() is not None:
            break
print("notify:", [g for g in got if g])
p.send_signal(signal.SIGTERM)
out = p.communicate(timeout=15)[0].decode(errors="replace")
print(out)
print("exit", p.returncode)
sys.exit(0 if "READY=1" in got and "WATCHDOG=1" in got and p.returncode == 0 else 1)
PY
ok $? "the installed causeway starts as _causeway with no component, sends READY=1 and WATCHDOG=1, stops on SIGTERM" "$work/start.log"
st=$(stat -c '%a %U' /var/lib/causeway/causeway.db 2> /dev/null)
ok "$([ "$st" = "600 _causeway" ] && echo 0 || echo 1)" "its store is /var/lib/causeway/causeway.db, 0600 _causeway ($st)"

unit=/lib/systemd/system/causeway.service
systemd-analyze verify "$unit" > "$work/verify.log" 2>&1
ok $? "systemd-analyze verify causeway.service" "$work/verify.log"
systemd-analyze security --offline=true --no-pager "$unit" > "$work/security.log" 2>&1
level=$(sed -n 's/.*Overall exposure level for causeway.service: \([0-9.]*\).*/\1/p' "$work/security.log")
ok "$(awk -v l="${level:-99}" 'BEGIN { exit !(l <= 2.5) }' && echo 0 || echo 1)" \
	"systemd-analyze security --offline=true rates the unit ${level:-?} (at most 2.5)" "$work/security.log"

# Upgrade: the same package under a higher version, over an installation
# whose configuration the operator edited and whose store holds data.
echo "; edited by the operator" >> /etc/causeway/causeway.conf
echo keep > /var/lib/causeway/upgrade-marker
chown _causeway: /var/lib/causeway/upgrade-marker
rm -rf "$work/repack"
dpkg-deb -R "$deb" "$work/repack"
sed -i "s/^Version: .*/Version: ${version}+upgrade1/" "$work/repack/DEBIAN/control"
dpkg-deb -b --root-owner-group "$work/repack" "$work/upgrade.deb" > /dev/null 2>&1
dpkg -i "$work/upgrade.deb" > "$work/upgrade.log" 2>&1
rc=$?
ok $rc "dpkg -i upgrades $version to ${version}+upgrade1" "$work/upgrade.log"
ok "$(grep -q 'edited by the operator' /etc/causeway/causeway.conf &&
	[ -f /var/lib/causeway/upgrade-marker ] &&
	[ "$(stat -c '%a %U' /var/lib/causeway)" = "700 _causeway" ] && echo 0 || echo 1)" \
	"the upgrade keeps the operator's configuration, the store and the state directory's mode"

dpkg --purge causeway > "$work/purge.log" 2>&1
ok $? "dpkg --purge removes it" "$work/purge.log"
left=""
for f in /usr/bin/causeway /etc/causeway /var/lib/causeway $unit; do
	[ -e "$f" ] && left="$left $f"
done
ok "$([ -z "$left" ] && echo 0 || echo 1)" "after the purge nothing is left${left:+ (left:$left)}"
finish
