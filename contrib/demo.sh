#!/bin/bash
# causeway demo: a throw-away Prosody on 127.0.0.1 with causeway attached
# as the component echo.localhost (the echo test network: its contacts
# answer what you send them), and a user to log in with.
#
#   contrib/demo.sh            start, print how to log in, run until Ctrl-C
#   contrib/demo.sh --check    start, query disco#info on echo.localhost with
#                              a slixmpp client, print it, stop; exit 0/1 (CI)
#
# Environment:
#   CAUSEWAY_BIN   the causeway binary (default ./causeway)
#   DEMO_KEEP=1    keep the temp dir (configs, logs) afterwards
# Needs prosody (Debian: prosody; prosody-modules for XEP-0356) and, for
# --check, /usr/bin/python3 with python3-slixmpp.  Everything stays in a
# temp dir and on 127.0.0.1; the client port is 5222 when it is free.
set -u

CHECK=0
case "${1:-}" in
	--check) CHECK=1 ;;
	"") ;;
	-h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

PYTHON=/usr/bin/python3
DOMAIN=echo.localhost
CAUSEWAY_BIN=${CAUSEWAY_BIN:-./causeway}

die() { echo "demo: $*" >&2; exit 1; }

[ -x "$CAUSEWAY_BIN" ] || die "no causeway binary at $CAUSEWAY_BIN (build it first, or set CAUSEWAY_BIN)"
case "$CAUSEWAY_BIN" in
	/*) ;;
	*) CAUSEWAY_BIN="$(cd "$(dirname "$CAUSEWAY_BIN")" && pwd)/$(basename "$CAUSEWAY_BIN")" ;;
esac
if ! command -v prosody >/dev/null || ! command -v prosodyctl >/dev/null; then
	die "prosody is not installed (apt-get install prosody prosody-modules)"
fi
[ -x "$PYTHON" ] || die "$PYTHON is needed (to pick free ports)"
if [ "$CHECK" = 1 ]; then
	"$PYTHON" -c 'import slixmpp' 2>/dev/null \
		|| die "--check needs python3-slixmpp for $PYTHON"
fi

D=$(mktemp -d "${TMPDIR:-/tmp}/causeway-demo.XXXXXX") || die "mktemp failed"
PROSODY_PID=""
CAUSEWAY_PID=""

# shellcheck disable=SC2317  # stop and cleanup run from the EXIT trap
# stop PID [SECONDS]: SIGTERM, wait for it to go, SIGKILL after SECONDS.
stop() {
	local pid=$1 n=$(( ${2:-10} * 10 ))
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do
		sleep 0.1; n=$((n - 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "demo: PID $pid did not stop on SIGTERM, killing it" >&2
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# shellcheck disable=SC2317
cleanup() {
	trap '' INT TERM HUP
	stop "$CAUSEWAY_PID" 5
	CAUSEWAY_PID=""
	stop "$PROSODY_PID" 10
	PROSODY_PID=""
	if [ "${DEMO_KEEP:-0}" = 1 ]; then
		echo "demo: kept $D"
	else
		rm -rf "$D"
	fi
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM HUP

# Free TCP ports on 127.0.0.1: 5222 for the client port when it is free
# (nicer for a client), otherwise whatever the kernel hands out.
read -r C2S_PORT COMPONENT_PORT <<EOF
$("$PYTHON" - <<'PY'
import socket
def bind(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s
a = bind(5222) or bind(0)
b = bind(0)
print(a.getsockname()[1], b.getsockname()[1])
PY
)
EOF
[ -n "${COMPONENT_PORT:-}" ] || die "could not find free ports"
SECRET=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
PASSWORD=$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')

cat > "$D/prosody.cfg.lua" <<EOF
-- causeway demo: throw-away Prosody in $D
run_as_root = true
pidfile = "$D/prosody.pid"
data_path = "$D/data"
log = { info = "$D/prosody.log"; error = "$D/prosody.err"; }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { $C2S_PORT }
c2s_interfaces = { "127.0.0.1" }
component_ports = { $COMPONENT_PORT }
component_interfaces = { "127.0.0.1" }
modules_disabled = { "s2s"; "s2s_auth_certs"; "offline"; "tls" }
modules_enabled = {
  "roster"; "saslauth"; "disco"; "ping"; "version"; "presence"; "privilege";
}
-- Loopback only: plain passwords without TLS are fine here.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
certificates = "$D"   -- no TLS here; an existing dir keeps the cert indexer quiet

VirtualHost "localhost"
  privileged_entities = {
    ["$DOMAIN"] = { roster = "both"; message = "outgoing"; presence = "roster"; };
  }

Component "$DOMAIN"
  component_secret = "$SECRET"
  modules_enabled = { "privilege" }
EOF

cat > "$D/causeway.conf" <<EOF
[causeway]
database = $D/causeway.db
key_file = $D/secret.key
log_level = info

[component $DOMAIN]
backend = echo
server = 127.0.0.1
port = $COMPONENT_PORT
secret = $SECRET
EOF

# port_open PORT: is something listening on 127.0.0.1:PORT?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Start Prosody from the temp dir (a crash would drop a core file there).
cd "$D" || die "cannot cd to $D"
prosody -F --config "$D/prosody.cfg.lua" > "$D/prosody.out" 2>&1 &
PROSODY_PID=$!
for _ in $(seq 150); do
	port_open "$C2S_PORT" && port_open "$COMPONENT_PORT" && break
	kill -0 "$PROSODY_PID" 2>/dev/null || break
	sleep 0.1
done
if ! port_open "$C2S_PORT" || ! port_open "$COMPONENT_PORT"; then
	tail -n 20 "$D/prosody.out" "$D/prosody.err" "$D/prosody.log" 2>/dev/null
	die "prosody did not come up on ports $C2S_PORT/$COMPONENT_PORT"
fi
prosodyctl --config "$D/prosody.cfg.lua" register demo localhost "$PASSWORD" \
	> "$D/register.out" 2>&1 || { cat "$D/register.out"; die "could not register demo@localhost"; }

: > "$D/causeway.log"
"$CAUSEWAY_BIN" -c "$D/causeway.conf" >> "$D/causeway.log" 2>&1 &
CAUSEWAY_PID=$!
attached=0
for _ in $(seq 200); do
	if grep -q "$DOMAIN: handshake accepted" "$D/causeway.log"; then
		attached=1; break
	fi
	kill -0 "$CAUSEWAY_PID" 2>/dev/null || break
	sleep 0.1
done
if [ "$attached" != 1 ]; then
	tail -n 20 "$D/causeway.log"
	die "causeway did not attach to prosody as $DOMAIN within 20 s"
fi

cat <<EOF

  causeway is attached to a private Prosody as $DOMAIN.

  Log in with any XMPP client (Gajim, Dino, Psi+, Conversations ...):
      account   demo@localhost
      password  $PASSWORD
      server    127.0.0.1   port $C2S_PORT
      security  no TLS (plain password, loopback only)
  Then open service discovery (Gajim: Accounts > Discover Services) on
      $DOMAIN
  and register with the Echo gateway (any username and password; the
  password "wrong" shows a refused login).  Accept the gateway's
  subscription request, and the contact echo@$DOMAIN appears in your
  roster: write to it and it answers.  Any address works as a contact
  (add bob@$DOMAIN); "/away busy", "/offline" and "/online" change the
  contact's presence.  Ad-hoc commands on $DOMAIN: settings, unregister.

  Logs: $D/causeway.log  (tail -f it)  and  $D/prosody.log
  causeway PID $CAUSEWAY_PID, prosody PID $PROSODY_PID

EOF

if [ "$CHECK" = 1 ]; then
	echo "demo: --check: asking $DOMAIN for disco#info as demo@localhost"
	"$PYTHON" - "$C2S_PORT" "demo@localhost" "$PASSWORD" "$DOMAIN" <<'PY'
import asyncio, logging, sys
logging.basicConfig(level=logging.CRITICAL)
import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

port, jid, password, target = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
xmpp = slixmpp.ClientXMPP(jid, password)
xmpp["feature_mechanisms"].unencrypted_plain = True
xmpp.register_plugin("xep_0030")
result = {"ok": False}

async def on_start(_):
    print("LOGIN OK %s" % xmpp.boundjid.full)
    try:
        info = await xmpp["xep_0030"].get_info(jid=target, timeout=10)
        q = info["disco_info"]
        for cat, typ, _lang, name in q["identities"]:
            print("IDENTITY %s/%s %s" % (cat, typ, name or ""))
        for var in sorted(q["features"]):
            print("FEATURE %s" % var)
        result["ok"] = any(c == "gateway" for c, _t, _l, _n in q["identities"])
    except IqError as e:
        print("DISCO ERROR %s" % e.iq["error"]["condition"])
    except IqTimeout:
        print("DISCO TIMEOUT")
    xmpp.disconnect()

def on_failed(_):
    print("LOGIN FAILED")
    xmpp.disconnect()

xmpp.add_event_handler("session_start", on_start)
xmpp.add_event_handler("failed_auth", on_failed)
xmpp.connect(address=("127.0.0.1", port), force_starttls=False,
             disable_starttls=True)
try:
    loop.run_until_complete(asyncio.wait_for(xmpp.disconnected, 30))
except asyncio.TimeoutError:
    print("TIMEOUT")
    xmpp.abort()
sys.exit(0 if result["ok"] else 1)
PY
	rc=$?
	if [ $rc -eq 0 ]; then
		echo "demo: --check OK: $DOMAIN answers disco#info with a gateway identity"
	else
		echo "demo: --check FAILED"
		echo "---- causeway log (tail)"; tail -n 20 "$D/causeway.log"
		echo "---- prosody log (tail)"; tail -n 20 "$D/prosody.log"
	fi
	exit $rc
fi

echo "Press Ctrl-C to stop."
# Sleep until a signal arrives or one of the two exits.
while kill -0 "$CAUSEWAY_PID" 2>/dev/null && kill -0 "$PROSODY_PID" 2>/dev/null; do
	wait -n "$CAUSEWAY_PID" "$PROSODY_PID" 2>/dev/null || true
done
if ! kill -0 "$CAUSEWAY_PID" 2>/dev/null; then
	echo "demo: causeway exited; last log lines:" >&2
	tail -n 20 "$D/causeway.log" >&2
	CAUSEWAY_PID=""
	exit 1
fi
echo "demo: prosody exited; last log lines:" >&2
tail -n 20 "$D/prosody.err" "$D/prosody.log" >&2
PROSODY_PID=""
exit 1
