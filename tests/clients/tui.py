"""The terminal clients, profanity and poezio, driven in tmux as a person
would, and the walk through a channel that test_profanity.py and
test_poezio.py share.

The walk (each step a TAP line, the screen saved as an artifact after
it): log in to a fresh Prosody account; join #chan%127.0.0.1@irc.localhost
with the nick typed (Caro), which the IRC bot must see JOIN; the occupant
list shows the bot and the user; the topic the bot set is on screen; a
line from the bot appears; a line typed reaches the bot; the typed line is
shown once; /nick Dora is a NICK on IRC and the screen shows the new nick;
a private message typed to the bot reaches it and its answer appears;
the gateway's settings command submitted unchanged from the client's
ad-hoc UI completes and leaves the user in the channel.  Last, the client
is still running (a crash is a failure).
"""

import os
import re
import secrets
import shutil
import time

import clientenv
from clientenv import BOT, CHAN, TOPIC, Screen, as_user, room_jid, user_home
import cwtest

WAIT = 10                       # seconds for anything that should happen
NICK = "Caro"
NICK2 = "Dora"


def token():
    return secrets.token_hex(3)


class Profanity:
    name = "profanity"
    prog = "profanity"

    def __init__(self, env):
        self.env = env
        self.home = user_home("cwclients-profanity-")
        self.screen = Screen(self.name, as_user(self.home, [self.prog]),
                             width=170, height=45)

    def ready(self):
        return self.screen.wait(r"Type '/help'|Profanity\. Type", WAIT)

    def type(self, text):
        self.screen.type(text)

    def login(self):
        e = self.env
        # Prosody offers STARTTLS with a self-signed certificate:
        # "tls trust" takes it, as a person would after checking it.
        self.type("/connect %s server 127.0.0.1 port %d tls trust"
                  % (e.jid, e.server.c2s_port))
        if not self.screen.wait(r"Enter password:", WAIT):
            return None
        self.type(e.password)
        return self.screen.wait(r"logged in successfully|Login failed.*", WAIT)

    def join(self, room, nick):
        self.type("/join %s nick %s" % (room, nick))
        return self.screen.wait(r"You have joined the room as \S+.*|"
                                r"[Rr]oom join failed.*|.*[Ee]rror.*", WAIT)

    joined_re = r"You have joined the room as (\S+?),"

    def say(self, text):
        self.type(text)

    def set_nick(self, nick):
        self.type("/nick " + nick)

    def pm(self, nick, text):
        # In the room's window: a private message to an occupant.
        self.type("/msg %s %s" % (nick, text))

    def line_re(self, nick, text):
        """How a message from nick reads on screen."""
        return r"^\d\d:\d\d:\d\d - %s: %s" % (re.escape(nick), re.escape(text))

    def topic_re(self):
        return r"(Room subject: |has set the room subject: )%s" % re.escape(TOPIC)

    def topic_setter_re(self):
        return r"\*%s has set the room subject: %s" % (BOT, re.escape(TOPIC))

    def room_title(self, text):
        """The room window's title bar (first line), or None."""
        lines = text.splitlines()
        return lines[0].strip() if lines else None

    def occupants(self, text):
        """The nicks in the occupant panel on the right, after the
        "Moderators"/"Participants" headings (profanity's layout)."""
        col = None
        nicks = []
        for line in text.splitlines():
            if col is None:
                for head in ("Moderators", "Participants", "Visitors"):
                    i = line.rfind(head)
                    if i > 0 and line[i:].strip() == head:
                        col = i
                        break
                continue
            part = line[col - 2:].strip() if len(line) > col else ""
            if part and part not in ("Moderators", "Participants", "Visitors"):
                nicks.append(part.split()[-1])
        return nicks

    def quit(self):
        self.type("/quit")

    def settings_unchanged(self):
        """The gateway's settings command, submitted as it comes:
        /cmd exec opens the form in a window, /form submit sends it.
        Returns what the screen says then."""
        self.type("/cmd exec settings irc.localhost")
        if not self.screen.wait(r"Use '/form submit'", WAIT):
            return None
        self.type("/form submit")
        return self.screen.wait(r"settings (completed|canceled).*|.*[Ee]rror.*", WAIT)

    def back_to_room(self):
        self.type("/win 2")             # 1 is the console, 2 the room


class Poezio(Profanity):
    name = "poezio"
    prog = "poezio"

    def __init__(self, env):
        self.env = env
        self.home = user_home("cwclients-poezio-")
        # poezio checks the server's certificate: it trusts Prosody's.
        ca = os.path.join(self.home, "prosody-ca.pem")
        shutil.copy(env.server.cert, ca)
        cfgdir = os.path.join(self.home, ".config", "poezio")
        os.makedirs(cfgdir)
        with open(os.path.join(cfgdir, "poezio.cfg"), "w") as f:
            f.write("[Poezio]\njid = %s\npassword = %s\ncustom_host = 127.0.0.1\n"
                    "custom_port = %d\nca_cert_path = %s\n"
                    % (env.jid, env.password, env.server.c2s_port, ca))
        clientenv.chown_tree(self.home)
        self.screen = Screen(self.name, as_user(self.home, [self.prog]),
                             width=170, height=45)

    def ready(self):
        return self.screen.wait(r"Welcome to poezio", WAIT)

    def type(self, text):
        # In the roster tab, "/" opens the command line: the rest typed at
        # once with it is lost, as it would be for a fast typist.
        if text.startswith("/"):
            self.screen.type("/", enter=False, pause=0.4)
            text = text[1:]
        self.screen.type(text)

    def login(self):
        # The account is in poezio.cfg: it logs in on start.
        return self.screen.wait(r"Authentication success.*|"
                                r"[Aa]uthentication failed.*|.*certificate.*invalid.*",
                                WAIT)

    def join(self, room, nick):
        self.type("/join %s/%s" % (room, nick))
        return self.screen.wait(r"You \(\S+\) joined the room|"
                                r".*[Ee]rror.*|.*not allowed.*", WAIT)

    joined_re = r"You \((\S+)\) joined the room"

    def pm(self, nick, text):
        # /query NICK TEXT in a room: a private tab with that occupant.
        self.type("/query %s %s" % (nick, text))

    def line_re(self, nick, text):
        return r"\d\d:\d\d:\d\d %s> %s" % (re.escape(nick), re.escape(text))

    def topic_re(self):
        return r"(The subject is: |set the subject to: )%s" % re.escape(TOPIC)

    def topic_setter_re(self):
        return r"%s set the subject to: %s" % (BOT, re.escape(TOPIC))

    def room_title(self, text):
        return None         # poezio names a room's tab by its JID, always

    def occupants(self, text):
        """The nicks in the panel right of the last "│" of each line
        (poezio prefixes each with a status and a role character)."""
        nicks = []
        for line in text.splitlines():
            if line.count("│") >= 2:
                cell = line.rsplit("│", 1)[1].strip()
                if cell:
                    nicks.append(cell.lstrip("|&@%+-~ ").split()[0])
        return nicks

    def quit(self):
        self.type("/quit")

    def settings_unchanged(self):
        """The gateway's settings command, submitted as it comes: poezio
        lists the commands (/ad-hoc), Enter runs the first (settings),
        Ctrl+Y submits the form (with action "next").  Returns what the
        screen says then."""
        self.type("/ad-hoc irc.localhost")
        if not self.screen.wait(r"settings\s+Change settings", WAIT):
            return None
        self.screen.key("Enter")
        if not self.screen.wait(r"Ctrl\+Y: send form", WAIT):
            return None
        self.screen.key("C-y")
        return self.screen.wait(r"Adhoc command \w+.*|.*[Ee]rror.*", WAIT)

    def back_to_room(self):
        self.type("/win 1")


def check_settings(tap, env, c, me):
    """A never-registered user submits the settings command unchanged
    from the client's own ad-hoc UI: it completes, and the IRC side sees
    no QUIT, PART or JOIN (no reconnect, no room shutdown)."""
    label, bot = c.name, env.bot
    b0 = bot.mark()
    m = c.settings_unchanged()
    c.screen.save("settings")
    tap.ok(m and "completed" in m.group(0), "%s: the gateway's settings command "
           "(one step, submitted unchanged from the client's own UI) completes"
           % label,
           diag="screen says %r\n%s" % (m.group(0) if m else None, c.screen.text()))
    time.sleep(2)
    moved = bot.find(lambda l: cwtest.irc_parse(l)[1] in ("QUIT", "PART", "JOIN"), b0)
    c.back_to_room()
    text = "still here %s" % token()
    b1 = bot.mark()
    c.say(text)
    got = bot.wait_privmsg(text, CHAN, WAIT, b1)
    tap.ok(not moved and got and got[0] == me, "%s: after it the user is still "
           "in %s as %s: no QUIT/PART/JOIN on IRC, the next line goes out"
           % (label, CHAN, me), diag="IRC saw %r; bot got %r" % (moved, got))


def walk(tap, env, cls):
    """The person's walk through the channel with one client; returns
    nothing, reports each step."""
    label = cls.name
    bot = env.bot
    ok = tap.ok

    def diag(c):
        screen = "\n".join(l.rstrip() for l in c.screen.text().splitlines()
                           if l.strip(" │┌┐└┘─"))
        return "screen (blank lines left out):\n%s\nthe IRC bot received:\n%s" % (
            screen, bot.dump(0, 8))

    c = cls(env)
    if not c.ready():
        ok(False, "%s: starts as user %s" % (label, clientenv.USER), diag=diag(c))
        return
    m = c.login()
    c.screen.save("login")
    if not ok(m and re.search(r"logged in|success", m.group(0)),
              "%s: logs in to a fresh account %s (%.1f s after setup)"
              % (label, env.jid, env.setup_seconds()),
              diag=diag(c)):
        return

    # ---- join with the nick typed
    room = room_jid()
    b0 = bot.mark()
    t0 = time.monotonic()
    m = c.join(room, NICK)
    t_join = time.monotonic() - t0
    c.screen.save("join")
    joined = m and re.search(c.joined_re, m.group(0))
    if not ok(joined, "%s: /join %s with nick %s, never registered with the "
              "gateway: the client says it joined (%.1f s)" % (label, room, NICK, t_join),
              diag="the screen says: %r\n%s" % (m.group(0) if m else None, diag(c))):
        return
    shown_nick = joined.group(1)
    j = bot.wait_for(lambda l: cwtest.irc_parse(l)[1] == "JOIN", WAIT, b0)
    irc_nick = cwtest.irc_parse(j)[0] if j else None
    ok(irc_nick == NICK, "%s: the IRC bot sees %s JOIN %s (the nick typed is "
       "the IRC nick)" % (label, NICK, CHAN),
       diag="JOIN line: %r; the client shows itself as %r" % (j, shown_nick))
    ok(shown_nick == NICK, "%s: the screen shows the user joined as %s"
       % (label, NICK), diag="screen says joined as %r" % shown_nick)
    me = irc_nick or shown_nick

    # ---- occupants and topic
    occ = c.screen.wait(lambda t: (lambda o: BOT in o and me in o and o)(
        c.occupants(t)), WAIT)
    ok(occ, "%s: the occupant list shows %s and %s" % (label, BOT, me),
       diag="occupants read: %r\n%s" % (c.occupants(c.screen.text()), diag(c)))
    ok(c.screen.wait(c.topic_re(), WAIT),
       "%s: the topic the bot set is shown (%r)" % (label, TOPIC), diag=diag(c))
    ok(c.screen.wait(c.topic_setter_re(), 2),
       "%s: the topic is shown as set by %s" % (label, BOT), diag=diag(c))
    title = c.room_title(c.screen.text())
    if title is not None:
        ok("#chan" in title and "%" not in title,
           "%s: the window title is the room's name, not #chan%%127.0.0.1"
           % label, diag="title: %r" % title)
    c.screen.save("occupants-topic")

    # ---- the bot says a line
    text = "hello from IRC %s" % token()
    bot.send("PRIVMSG %s :%s" % (CHAN, text))
    ok(c.screen.wait(c.line_re(BOT, text), WAIT),
       "%s: the bot's line appears as from %s" % (label, BOT), diag=diag(c))

    # ---- the user types a line
    mine = "hello from %s %s" % (label, token())
    b1 = bot.mark()
    c.say(mine)
    got = bot.wait_privmsg(mine, CHAN, WAIT, b1)
    ok(got and got[0] == me, "%s: the line typed reaches IRC as PRIVMSG %s "
       "from %s" % (label, CHAN, me), diag="bot got %r\n%s" % (got, diag(c)))
    shown = c.screen.wait(c.line_re(me, mine), WAIT)
    time.sleep(2)               # a second copy would come right after
    n = len(re.findall(c.line_re(me, mine), c.screen.text(), re.M))
    c.screen.save("chat")
    ok(shown and n == 1, "%s: the user's own line is shown once (shown %d "
       "times)" % (label, n), diag=diag(c))

    # ---- nick change
    b2 = bot.mark()
    c.set_nick(NICK2)
    nl = bot.wait_for(lambda l: cwtest.irc_parse(l)[1] == "NICK", WAIT, b2)
    ok(nl and cwtest.irc_parse(nl)[0] == me and
       cwtest.irc_parse(nl)[2][-1] == NICK2,
       "%s: /nick %s is NICK %s on IRC" % (label, NICK2, NICK2),
       diag="bot got %r\n%s" % (nl, diag(c)))
    ok(c.screen.wait(lambda t: NICK2 in c.occupants(t) and me not in c.occupants(t),
                     WAIT),
       "%s: the occupant list shows %s instead of %s" % (label, NICK2, me),
       diag="occupants read: %r\n%s" % (c.occupants(c.screen.text()), diag(c)))
    if nl:
        me = cwtest.irc_parse(nl)[2][-1]
    after = "after the nick change %s" % token()
    b3 = bot.mark()
    c.say(after)
    got = bot.wait_privmsg(after, CHAN, WAIT, b3)
    shown = c.screen.wait(c.line_re(NICK2, after), WAIT)
    time.sleep(1)
    n = len(re.findall(c.line_re(NICK2, after), c.screen.text(), re.M))
    ok(got and got[0] == NICK2 and shown and n == 1,
       "%s: the next line goes out and is shown once as from %s (shown %d "
       "times)" % (label, NICK2, n), diag="bot got %r\n%s" % (got, diag(c)))
    c.screen.save("nick")

    # ---- private message to the bot and its answer
    ptext = "private from %s %s" % (label, token())
    b4 = bot.mark()
    c.pm(BOT, ptext)
    got = bot.wait_privmsg(ptext, BOT, WAIT, b4)
    alive = c.screen.alive()
    ok(got and got[0] == me, "%s: a private message typed to %s in the room "
       "reaches it from %s" % (label, BOT, me),
       diag="bot got %r; client %s\n%s" % (got, "running" if alive else
                                           "EXITED (crashed?)", diag(c)))
    if not alive:
        ok(False, "%s: the client is still running after the private message"
           % label, diag=diag(c))
        c.screen.save("crashed")
        return
    answer = "private answer %s" % token()
    bot.send("PRIVMSG %s :%s" % (me, answer))
    shown = c.screen.wait(re.escape(answer), WAIT)
    c.screen.save("private")
    ok(shown, "%s: the bot's private answer appears" % label, diag=diag(c))
    check_settings(tap, env, c, me)
    ok(c.screen.alive(), "%s: the client is still running at the end" % label,
       diag=diag(c))
    tap.diag("%s: screen captures in %s" % (label, clientenv.artifacts_dir()))
    if c.screen.alive():
        c.quit()
        cwtest.wait_until(lambda: not c.screen.alive(), 5)
    c.screen.stop()


def main(cls):
    tap = cwtest.Tap()
    tap.diag("causeway binary: %s" % cwtest.causeway_bin())
    if not cwtest.have(cls.prog) or not cwtest.have("tmux") or \
            not cwtest.have("inspircd"):
        tap.skip("%s in tmux" % cls.name, "%s, tmux or inspircd not installed"
                 % cls.prog)
        return tap.finish()
    try:
        env = clientenv.Env(tap, cls.name)
        tap.diag("%s: InspIRCd, Prosody, causeway and the bot up in %.1f s"
                 % (cls.name, env.setup_seconds()))
        walk(tap, env, cls)
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("%s: unexpected exception: %s" % (cls.name, e), e)
    rc = tap.finish()
    if rc:
        cwtest.mark_failed()
    return rc
