#!/bin/bash
# causeway demo: the real job, on 127.0.0.1.  A throw-away Prosody, a
# local IRC server (Debian's InspIRCd) whose channel #demo has a friendly
# bot in it, and causeway attached twice: as irc.localhost (the IRC
# gateway) and as echo.localhost (the echo test network).  It prints the
# account to log in with and the room to join,
# #demo%irc.localhost@irc.localhost; the bot answers in the room and in
# private.
#
#   contrib/demo.sh            start, print what to type, run until Ctrl-C
#   contrib/demo.sh --check    start, join #demo%irc.localhost@irc.localhost
#                              as a client that never registered with the
#                              gateway, wait for the bot's greeting and its
#                              answers in the room and in private, print
#                              the room's JID, stop; exit 0/1 (CI)
#
# Environment:
#   CAUSEWAY_BIN   the causeway binary (default ./causeway)
#   DEMO_KEEP=1    keep the temp dir (configs, logs) afterwards
# Needs prosody (Debian: prosody; prosody-modules for XEP-0356), inspircd,
# /usr/bin/python3 (ports, the bot) and, for --check, python3-slixmpp.
# Everything stays in a temp dir and on 127.0.0.1; the client port is 5222
# when it is free.
set -u

CHECK=0
case "${1:-}" in
	--check) CHECK=1 ;;
	"") ;;
	-h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

PYTHON=/usr/bin/python3
DOMAIN=echo.localhost
IRC_DOMAIN=irc.localhost
IRC_HOST=irc.localhost          # RFC 6761: a name for 127.0.0.1
ROOM="#demo%$IRC_HOST@$IRC_DOMAIN"
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
command -v inspircd >/dev/null || die "inspircd is not installed (apt-get install inspircd)"
[ -x "$PYTHON" ] || die "$PYTHON is needed (free ports, the IRC bot)"
if [ "$CHECK" = 1 ]; then
	"$PYTHON" -c 'import slixmpp' 2>/dev/null \
		|| die "--check needs python3-slixmpp for $PYTHON"
fi

D=$(mktemp -d "${TMPDIR:-/tmp}/causeway-demo.XXXXXX") || die "mktemp failed"
PROSODY_PID=""
CAUSEWAY_PID=""
IRCD_PID=""
BOT_PID=""

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
	stop "$BOT_PID" 3
	BOT_PID=""
	stop "$IRCD_PID" 5
	IRCD_PID=""
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
read -r C2S_PORT COMPONENT_PORT IRC_PORT <<PORTS
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
c = bind(0)
print(a.getsockname()[1], b.getsockname()[1], c.getsockname()[1])
PY
)
PORTS
[ -n "${IRC_PORT:-}" ] || die "could not find free ports"
SECRET=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
IRC_SECRET=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
PASSWORD=$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')

cat > "$D/prosody.cfg.lua" <<CONF
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
-- The gateways in service discovery of the server (clients list them).
disco_items = {
  { "$IRC_DOMAIN", "IRC gateway (demo)" };
  { "$DOMAIN", "Echo gateway (demo)" };
}

VirtualHost "localhost"
  privileged_entities = {
    ["$DOMAIN"] = { roster = "both"; message = "outgoing"; presence = "roster"; };
  }

Component "$DOMAIN"
  component_secret = "$SECRET"
  modules_enabled = { "privilege" }

Component "$IRC_DOMAIN"
  component_secret = "$IRC_SECRET"
CONF

cat > "$D/causeway.conf" <<CONF
[causeway]
database = $D/causeway.db
key_file = $D/secret.key
log_level = info

[component $DOMAIN]
backend = echo
server = 127.0.0.1
port = $COMPONENT_PORT
secret = $SECRET

[component $IRC_DOMAIN]
backend = irc
name = IRC gateway (demo)
server = 127.0.0.1
port = $COMPONENT_PORT
secret = $IRC_SECRET
allowed_servers = $IRC_HOST

; The demo's IRC server: plain text on loopback.
[irc-server $IRC_HOST]
port = $IRC_PORT
tls = no
CONF

# InspIRCd: plain text, loopback only, named after the demo's host.
cat > "$D/inspircd.conf" <<CONF
<server name="$IRC_HOST" description="causeway demo" network="DemoNet">
<admin name="demo" nick="demo" email="demo@$IRC_HOST">
<bind address="127.0.0.1" port="$IRC_PORT" type="clients">
<connect name="loopback" allow="127.0.0.0/8" maxchans="50" timeout="60"
         pingfreq="2m" hardsendq="1M" softsendq="64k" recvq="64k"
         threshold="1000" commandrate="100000" fakelag="no" localmax="1000"
         globalmax="1000" maxconnwarn="no" limit="1000" useident="no"
         resolvehostnames="no">
<dns server="127.0.0.1" timeout="1">
<files motd="$D/motd.txt">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="$D/inspircd.log">
<options prefixquit="Quit: " syntaxhints="no" announcets="yes" hostintopic="yes">
<security hideserver="" userstats="Pu" customversion="" flatlinks="no" hidesplits="no">
<limits maxnick="30" maxchan="64" maxmodes="20" maxident="11" maxhost="64"
        maxquit="255" maxtopic="307" maxkick="255" maxreal="128" maxgecos="128" maxaway="200">
<module name="cap">
<module name="ircv3">
<module name="ircv3_servertime">
<module name="ircv3_echomessage">
<module name="namesx">
<module name="uhnames">
CONF
echo "Welcome to the causeway demo IRC server." > "$D/motd.txt"

# The friendly bot: joins #demo, greets whoever comes in, answers in the
# channel when named and in private to anything.
cat > "$D/bot.py" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
NICK, CHAN = "demobot", "#demo"
for _ in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", port), 5)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("bot: no IRC server on port %d" % port)
s.settimeout(None)

def send(line):
    s.sendall(line.encode("utf-8", "replace")[:510] + b"\r\n")

send("NICK " + NICK)
send("USER demobot 0 * :causeway demo bot")
buf = b""
while True:
    data = s.recv(4096)
    if not data:
        break
    buf += data
    while b"\r\n" in buf:
        raw, buf = buf.split(b"\r\n", 1)
        line = raw.decode("utf-8", "replace")
        if line.startswith("PING"):
            send("PONG" + line[4:])
            continue
        parts = line.split(" ", 3)
        if len(parts) < 2 or not line.startswith(":"):
            continue
        who = parts[0][1:].split("!", 1)[0]
        cmd = parts[1]
        if cmd == "001":
            send("JOIN " + CHAN)
        elif cmd == "JOIN" and who == NICK:
            send("TOPIC %s :causeway demo: this IRC channel is an XMPP room"
                 % CHAN)
            print("bot: in %s" % CHAN, flush=True)
        elif cmd == "JOIN":
            send("PRIVMSG %s :Hello %s! I am %s, the demo bot. Say something "
                 "with my name in it, or write to me in private."
                 % (CHAN, who, NICK))
        elif cmd == "PRIVMSG" and len(parts) == 4:
            target, text = parts[2], parts[3][1:]
            if text.startswith("\x01"):
                continue
            if target == CHAN and NICK in text.lower():
                send("PRIVMSG %s :%s: you said \"%s\" on IRC. Now try a "
                     "private message." % (CHAN, who, text))
            elif target == NICK:
                send("PRIVMSG %s :Hi %s, a private answer from IRC to \"%s\"."
                     % (who, who, text))
PY

# port_open PORT: is something listening on 127.0.0.1:PORT?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Everything runs from the temp dir (a crash would drop a core file there).
cd "$D" || die "cannot cd to $D"
prlimit --core=0:0 inspircd --config="$D/inspircd.conf" --nofork --runasroot \
	--nopid > "$D/inspircd.out" 2>&1 &
IRCD_PID=$!
prosody -F --config "$D/prosody.cfg.lua" > "$D/prosody.out" 2>&1 &
PROSODY_PID=$!
for _ in $(seq 150); do
	port_open "$C2S_PORT" && port_open "$COMPONENT_PORT" && port_open "$IRC_PORT" && break
	kill -0 "$PROSODY_PID" 2>/dev/null || break
	kill -0 "$IRCD_PID" 2>/dev/null || break
	sleep 0.1
done
if ! port_open "$IRC_PORT"; then
	tail -n 20 "$D/inspircd.out" "$D/inspircd.log" 2>/dev/null
	die "inspircd did not come up on port $IRC_PORT"
fi
if ! port_open "$C2S_PORT" || ! port_open "$COMPONENT_PORT"; then
	tail -n 20 "$D/prosody.out" "$D/prosody.err" "$D/prosody.log" 2>/dev/null
	die "prosody did not come up on ports $C2S_PORT/$COMPONENT_PORT"
fi
"$PYTHON" "$D/bot.py" "$IRC_PORT" > "$D/bot.log" 2>&1 &
BOT_PID=$!
prosodyctl --config "$D/prosody.cfg.lua" register demo localhost "$PASSWORD" \
	> "$D/register.out" 2>&1 || { cat "$D/register.out"; die "could not register demo@localhost"; }

: > "$D/causeway.log"
"$CAUSEWAY_BIN" -c "$D/causeway.conf" >> "$D/causeway.log" 2>&1 &
CAUSEWAY_PID=$!
attached=0
for _ in $(seq 200); do
	if grep -q "$DOMAIN: handshake accepted" "$D/causeway.log" &&
		grep -q "$IRC_DOMAIN: handshake accepted" "$D/causeway.log" &&
		grep -q "bot: in #demo" "$D/bot.log"; then
		attached=1; break
	fi
	kill -0 "$CAUSEWAY_PID" 2>/dev/null || break
	sleep 0.1
done
if [ "$attached" != 1 ]; then
	tail -n 20 "$D/causeway.log" "$D/bot.log"
	die "causeway did not attach as $DOMAIN and $IRC_DOMAIN, or the bot did not join #demo, within 20 s"
fi

cat <<TEXT

  A private Prosody, an IRC server (irc.localhost) with a bot in #demo, and
  causeway bridging them are running.

  Log in with any XMPP client (Gajim, Dino, Psi+, Conversations ...):
      account   demo@localhost
      password  $PASSWORD
      server    127.0.0.1   port $C2S_PORT
      security  no TLS (plain password, loopback only)

  Then join this room (Gajim: Accounts > Join Group Chat; Dino: + > Join
  Channel), with any nickname: it is your IRC nick.
      $ROOM

  demobot greets you in the room.  Write a line with "demobot" in it and it
  answers there; write to it in private (its JID in the room, or
  demobot%$IRC_HOST@$IRC_DOMAIN) and it answers in private.  No
  registration is needed.

  Also there: the echo test gateway $DOMAIN (service discovery, register
  with any username and password; echo@$DOMAIN answers what you write).

  Logs: $D/causeway.log  (tail -f it), $D/inspircd.log, $D/prosody.log
  causeway PID $CAUSEWAY_PID, prosody PID $PROSODY_PID, inspircd PID $IRCD_PID

TEXT

if [ "$CHECK" = 1 ]; then
	echo "demo: --check: demo@localhost (never registered with $IRC_DOMAIN) joins $ROOM"
	"$PYTHON" - "$C2S_PORT" "demo@localhost" "$PASSWORD" "$ROOM" <<'PY'
import asyncio, logging, sys
logging.basicConfig(level=logging.CRITICAL)
import slixmpp

port, jid, password, room = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
NICK = "visitor"
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
xmpp = slixmpp.ClientXMPP(jid, password)
xmpp["feature_mechanisms"].unencrypted_plain = True
result = {"joined": False, "greeted": False, "answered": False,
          "private": False}

def on_presence(p):
    if p["from"].bare != room:
        return
    if p["type"] == "error":
        print("JOIN ERROR %s: %s" % (p["error"]["condition"], p["error"]["text"]))
        xmpp.disconnect()
        return
    if p["from"].resource == NICK and p["type"] != "unavailable":
        if not result["joined"]:
            print("JOINED %s as %s" % (room, NICK))
        result["joined"] = True

def on_message(m):
    if m["from"].bare != room or m["from"].resource != "demobot":
        return
    body = m["body"]
    if m["type"] == "chat" and "private answer" in body:
        print("BOT SAYS IN PRIVATE %s" % body)
        result["private"] = True
        xmpp.disconnect()
        return
    if m["type"] != "groupchat":
        return
    print("BOT SAYS %s" % body)
    if "Hello %s" % NICK in body and not result["greeted"]:
        result["greeted"] = True
        xmpp.send_message(mto=room, mbody="hi demobot, from XMPP", mtype="groupchat")
    elif "you said" in body and not result["answered"]:
        result["answered"] = True
        xmpp.send_message(mto="%s/demobot" % room, mbody="psst, from XMPP",
                          mtype="chat")

async def on_start(_):
    print("LOGIN OK %s" % xmpp.boundjid.full)
    xmpp.send_presence(pto="%s/%s" % (room, NICK))

def on_failed(_):
    print("LOGIN FAILED")
    xmpp.disconnect()

xmpp.add_event_handler("session_start", on_start)
xmpp.add_event_handler("failed_auth", on_failed)
xmpp.add_event_handler("presence", on_presence)
xmpp.add_event_handler("message", on_message)
xmpp.connect(address=("127.0.0.1", port), force_starttls=False,
             disable_starttls=True)
try:
    loop.run_until_complete(asyncio.wait_for(xmpp.disconnected, 45))
except asyncio.TimeoutError:
    print("TIMEOUT joined=%(joined)s greeted=%(greeted)s answered=%(answered)s "
          "private=%(private)s" % result)
    xmpp.abort()
sys.exit(0 if all(result.values()) else 1)
PY
	rc=$?
	if [ $rc -eq 0 ]; then
		echo "demo: --check OK: joined $ROOM without registering; demobot greeted, answered in the room and in private"
		echo "$ROOM"
	else
		echo "demo: --check FAILED"
		echo "---- causeway log (tail)"; tail -n 30 "$D/causeway.log"
		echo "---- bot log (tail)"; tail -n 10 "$D/bot.log"
		echo "---- inspircd log (tail)"; tail -n 10 "$D/inspircd.log"
	fi
	exit $rc
fi

echo "Press Ctrl-C to stop."
# Sleep until a signal arrives or one of them exits.
while kill -0 "$CAUSEWAY_PID" 2>/dev/null && kill -0 "$PROSODY_PID" 2>/dev/null &&
	kill -0 "$IRCD_PID" 2>/dev/null; do
	wait -n "$CAUSEWAY_PID" "$PROSODY_PID" "$IRCD_PID" 2>/dev/null || true
done
if ! kill -0 "$CAUSEWAY_PID" 2>/dev/null; then
	echo "demo: causeway exited; last log lines:" >&2
	tail -n 20 "$D/causeway.log" >&2
	CAUSEWAY_PID=""
	exit 1
fi
if ! kill -0 "$IRCD_PID" 2>/dev/null; then
	echo "demo: inspircd exited; last log lines:" >&2
	tail -n 20 "$D/inspircd.out" "$D/inspircd.log" >&2
	IRCD_PID=""
	exit 1
fi
echo "demo: prosody exited; last log lines:" >&2
tail -n 20 "$D/prosody.err" "$D/prosody.log" >&2
PROSODY_PID=""
exit 1
