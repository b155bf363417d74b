#!/usr/bin/python3
"""Gajim, Psi and Dino, the graphical clients, driven under Xvfb with
xdotool as a person would click and type, against a real Prosody, InspIRCd
and causeway (clientenv.Env).  Run on demand through tests/clients/gui.sh,
not in CI: the clicks go to fixed screen positions of Debian 12's Gajim
1.7.3, Psi 1.5 and Dino 0.4.2 on a 1280x800 screen without a window
manager, and another version, theme or font moves them; Dino also needs
unshare (network and mount namespaces), which containers often refuse.

What is checked is what the IRC side sees (the bot): the join with the
nick typed, a line typed in the room, a nick change, a private message.
What the client shows is kept as screenshots (import -window root) in
$CW_ARTIFACTS, or in docs/clients/ with --docs: look at them.

  CAUSEWAY_BIN=... /usr/bin/python3 tests/clients/gui.py [--docs] [gajim] [psi] [dino]
"""

import os
import secrets
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clientenv                                 # noqa: E402
from clientenv import BOT, CHAN, as_user, room_jid, user_home  # noqa: E402
import cwtest                                    # noqa: E402

WAIT = 15
W, H = 1280, 800


class Display:
    """An Xvfb on a display number it picks itself (-displayfd), without
    TCP and without access control (local clients only)."""

    def __init__(self):
        r, w = os.pipe()
        self.popen = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", "%dx%dx24" % (W, H),
             "-nolisten", "tcp", "-ac"], pass_fds=(w,),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(w)
        cwtest.on_exit(self.stop)
        num = b""
        with os.fdopen(r, "rb") as f:
            num = f.readline().strip()
        if not num:
            raise RuntimeError("Xvfb did not start")
        self.name = ":" + num.decode()

    def env(self):
        return dict(os.environ, DISPLAY=self.name)

    def xdo(self, *args):
        return subprocess.run(["xdotool"] + [str(a) for a in args],
                              env=self.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=30
                              ).stdout.decode(errors="replace")

    def click(self, x, y, n=1, pause=0.4):
        self.xdo("mousemove", x, y)
        time.sleep(0.1)
        if n == 1:
            self.xdo("click", 1)
        else:
            self.xdo("click", "--repeat", n, "--delay", 80, 1)
        time.sleep(pause)

    def press(self, x, y, pause=1):
        """A slower click (button held 0.15 s), which GTK 3 dialogs of
        Dino need."""
        self.xdo("mousemove", x, y)
        time.sleep(0.3)
        self.xdo("mousedown", 1)
        time.sleep(0.15)
        self.xdo("mouseup", 1)
        time.sleep(pause)

    def type(self, text, pause=0.3):
        self.xdo("type", "--delay", 25, text)
        time.sleep(pause)

    def key(self, *keys, pause=0.3):
        self.xdo("key", *keys)
        time.sleep(pause)

    def window(self, name, timeout=WAIT):
        """The id of a visible window whose name matches, or None."""
        def find():
            ids = self.xdo("search", "--onlyvisible", "--name", name).split()
            return ids[0] if ids else None
        return cwtest.wait_until(find, timeout, 0.3)

    def geometry(self, wid):
        """(x, y, w, h) of a window."""
        out = self.xdo("getwindowgeometry", wid)
        pos = [int(v) for v in out.split("Position:")[1].split("(")[0].strip().split(",")]
        size = [int(v) for v in out.split("Geometry:")[1].strip().split("x")]
        return pos[0], pos[1], size[0], size[1]

    def wait_window(self, name, timeout=WAIT):
        """Geometry of the window called name once it shows, or None."""
        wid = self.window(name, timeout)
        return self.geometry(wid) if wid else None

    def dark(self, x, y):
        """True when the screen is black at (x, y): no window there."""
        out = subprocess.run(["import", "-window", "root", "-crop",
                              "1x1+%d+%d" % (x, y), "txt:-"], env=self.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=30).stdout.decode(errors="replace")
        return "#000000" in out

    def shot(self, path, crop=None):
        """A small PNG of the screen (or of crop=(w, h, x, y))."""
        args = ["import", "-window", "root"]
        if crop:
            args += ["-crop", "%dx%d+%d+%d" % crop, "+repage"]
        args += ["-colors", "64", "PNG8:" + path]
        subprocess.run(args, env=self.env(), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        return path

    def stop(self):
        if self.popen and self.popen.poll() is None:
            cwtest.stop_pid(self.popen.pid, 5, popen=self.popen)


class Gui:
    """One graphical client as the unprivileged user, in its own session
    bus, on the display."""

    nick = None

    def __init__(self, tap, env, disp, outdir):
        self.tap, self.env, self.d, self.outdir = tap, env, disp, outdir
        self.user, self.password = env.new_account()
        self.jid = "%s@localhost" % self.user
        self.home = user_home("cwclients-%s-" % self.name)
        self.log = os.path.join(os.path.dirname(self.home), "client.log")
        self.shots = []
        out = open(self.log, "wb")
        self.popen = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        cwtest.on_exit(self.stop)

    def command(self):
        return as_user(self.home, ["dbus-run-session", "--", self.prog],
                       {"DISPLAY": self.d.name})

    def shot(self, label, crop=None):
        path = os.path.join(self.outdir, "%s-%s.png" % (self.name, label))
        self.shots.append(self.d.shot(path, crop))

    def join_clicked(self, b0, label, crop=None):
        """After the click that joins: the bot must see a JOIN, with the
        nick typed.  Returns the IRC nick, or None when nothing came."""
        bot, ok = self.env.bot, self.tap.ok
        j = bot.wait_for(lambda l: cwtest.irc_parse(l)[1] == "JOIN", WAIT, b0)
        time.sleep(2)
        self.shot(label, crop)
        if not ok(j, "%s: joining %s makes the bot see a JOIN"
                  % (self.name, room_jid()), diag="bot:\n" + bot.dump(b0)):
            return None
        me = cwtest.irc_parse(j)[0]
        ok(me == self.nick, "%s: the nick typed (%s) is the IRC nick"
           % (self.name, self.nick), diag="JOIN line: %s" % j)
        return me

    def chat(self, me, focus):
        """The bot says a line; the user clicks the input (focus(), a
        callable) and types one, which must reach IRC from me."""
        bot = self.env.bot
        bot.send("PRIVMSG %s :hello %s %s" % (CHAN, self.name,
                                              secrets.token_hex(2)))
        got = self.typed_line(focus, "hi from %s %s" % (
            self.name, secrets.token_hex(2)), CHAN)
        self.tap.ok(got and got[0] == me, "%s: the line typed in the room "
                    "reaches IRC" % self.name, diag="bot got %r" % (got,))

    def typed_line(self, focus, text, target):
        """focus() clicks an input, text is typed and sent: the PRIVMSG
        to target the bot gets, as (nick, target, text), or None."""
        bot = self.env.bot
        mark = bot.mark()
        focus()
        self.d.type(text)
        self.d.key("Return")
        return bot.wait_privmsg(text, target, WAIT, mark)

    def change_nick(self, me, new):
        """/nick new typed in the room's input: one NICK on IRC.  Returns
        the IRC nick afterwards."""
        bot = self.env.bot
        b2 = bot.mark()
        self.d.type("/nick " + new)
        self.d.key("Return")
        nl = bot.wait_for(lambda l: cwtest.irc_parse(l)[1] == "NICK", WAIT, b2)
        done = nl and cwtest.irc_parse(nl)[2][-1] == new
        self.tap.ok(done, "%s: /nick %s is NICK %s on IRC" % (self.name, new, new),
                    diag="bot got %r" % nl)
        return new if done else me

    def private(self, me, open_chat, focus):
        """open_chat() opens a private chat with the bot, focus() clicks
        its input; the line typed must reach the bot, which answers."""
        bot = self.env.bot
        open_chat()
        got = self.typed_line(focus, "private from %s %s" % (
            self.name, secrets.token_hex(2)), BOT)
        self.tap.ok(got and got[0] == me, "%s: a private message to %s "
                    "(double-click in the occupant list) reaches it"
                    % (self.name, BOT), diag="bot got %r; see %s"
                    % (got, self.shots[-1] if self.shots else "-"))
        if got:
            bot.send("PRIVMSG %s :answer to %s" % (me, self.name))
            time.sleep(2)

    def alive(self):
        return self.popen.poll() is None

    def stop(self):
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, 15)
            except OSError:
                pass
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.popen.pid, 9)
                except OSError:
                    pass
                self.popen.wait(5)


class Gajim(Gui):
    name = "gajim"
    prog = "gajim"
    nick = "Gina"

    def walk(self):
        d, e, bot, ok = self.d, self.env, self.env.bot, self.tap.ok
        if not ok(d.window("^Gajim$", 40), "gajim: starts (main window shown)",
                  diag="".join(cwtest.tail(self.log, 20))):
            return
        time.sleep(3)
        # The account assistant: address, password, Advanced Settings.
        d.click(640, 345)
        d.type(self.jid)
        d.key("Tab")
        d.type(self.password)
        d.click(502, 420)
        d.click(640, 454, pause=2)
        # Advanced: host and port, STARTTLS.
        d.click(655, 392)
        d.type("127.0.0.1")
        d.click(655, 432)
        d.key("ctrl+a")
        d.type(str(e.server.c2s_port))
        d.click(854, 609, pause=3)
        # The self-signed certificate: trust it, log in.
        self.shot("01-certificate")
        d.click(552, 516)
        d.click(854, 609, pause=3)
        d.click(846, 609, pause=3)           # "Connect"
        # No keyring: Gajim asks for the password again.
        d.click(640, 466)
        d.type(self.password)
        d.key("Return", pause=4)
        main = d.window("^Gajim$")
        if main:
            d.xdo("windowsize", main, W, H)
            time.sleep(1)
        self.shot("02-online")
        # Start Chat (Ctrl+N), the room's address, then the nick.
        d.key("ctrl+n", pause=2)
        d.click(600, 203)
        d.type(room_jid(), pause=1.5)
        d.key("Return", pause=3)
        self.shot("03-room-preview")
        b0 = bot.mark()
        d.click(769, 665, pause=1)             # the nick's pencil
        d.key("ctrl+a")
        d.type(self.nick)
        d.key("Return")
        d.click(815, 665)                      # Join
        me = self.join_clicked(b0, "04-joined")
        if me is None:
            return
        self.chat(me, lambda: d.click(820, 776))
        time.sleep(2)
        self.shot("05-chat")
        # Gajim 1.7 offers no nick change in a room whose disco identity
        # is conference/irc (the menu item is greyed, /nick is unknown).
        self.tap.skip("gajim: nick change", "Gajim 1.7.3 disables Change "
                      "Nickname in rooms of type irc, as it does for biboumi")

        # A private message: double-click the bot in the occupant list.
        def open_chat():
            d.click(1140, 136, n=2, pause=2)
            self.shot("06-private-open")
        self.private(me, open_chat, lambda: d.click(820, 776))
        self.shot("07-private")
        ok(self.alive(), "gajim: still running at the end",
           diag="".join(cwtest.tail(self.log, 20)))


class Psi(Gui):
    name = "psi"
    prog = "psi"
    nick = "Ivan"

    def walk(self):
        d, e, bot, ok = self.d, self.env, self.env.bot, self.tap.ok
        g = d.wait_window("^Import Wizard$", 40)
        if not ok(g, "psi: starts (the profile wizard shows)",
                  diag="".join(cwtest.tail(self.log, 20))):
            return
        x, y = g[0], g[1]
        d.click(x + 18, y + 116)               # Create new profile
        d.click(x + 213, y + 146)              # OK
        g = d.wait_window("^Account setup$")
        d.click(g[0] + 320, g[1] + 67, pause=1)  # Use existing account
        g = d.wait_window("Account Properties$")
        x, y = g[0], g[1]
        d.click(x + 320, y + 95)
        d.type(self.jid)
        d.click(x + 260, y + 149)
        d.type(self.password)
        d.click(x + 281, y + 26)               # Connection tab
        d.click(x + 29, y + 178)               # Manually specify host/port
        d.click(x + 240, y + 208)
        d.type("127.0.0.1")
        d.click(x + 490, y + 208)
        d.key("ctrl+a")
        d.type(str(e.server.c2s_port))
        d.click(x + 402, y + 448, pause=1)     # Save
        g = d.wait_window("^Useful Tips$", 5)
        if g:
            d.click(g[0] + 428, g[1] + 376)    # Close
        d.click(195, 408)                      # the status button
        d.click(160, 432, pause=2)             # Online
        g = d.wait_window("^Server Authentication$")
        self.shot("01-certificate")
        if g:
            d.click(g[0] + 230, g[1] + 83, pause=2)  # Trust this certificate
        g = d.wait_window("^User Info$", 8)    # its own vCard, first login
        if g:
            d.click(g[0] + 428, g[1] + 316)    # Close
        self.shot("02-online")
        # The Psi menu button: at the bottom of the roster, or one row
        # up when an event line sits below it.  A menu covers (180, 600).
        for by in (408, 381):
            d.click(88, by)
            if not d.dark(180, 600):
                d.click(143, by + 99, pause=1.5)   # Join Groupchat
                break
            d.key("Escape")
        g = d.wait_window("Join Groupchat")
        if not ok(g, "psi: the Join Groupchat dialog opens",
                  diag="see %s" % self.shots[-1]):
            return
        x, y = g[0], g[1]
        d.click(x + 214, y + 88)
        d.type("irc.localhost")
        d.click(x + 214, y + 119)
        d.type(room_jid().split("@")[0])
        d.click(x + 214, y + 150)
        d.key("ctrl+a")
        d.type(self.nick)
        b0 = bot.mark()
        d.click(x + 215, y + 235)              # Join
        me = self.join_clicked(b0, "03-joined", crop=(640, 430, 0, 0))
        if me is None:
            return
        self.chat(me, lambda: d.click(316, 410))
        me = self.change_nick(me, "Jack")
        time.sleep(2)
        self.shot("04-chat-nick", crop=(640, 430, 0, 0))
        # A private message: double-click the bot, type in the new window.
        self.private(me, lambda: d.click(526, 63, n=2, pause=2),
                     lambda: d.click(186, 326))
        self.shot("05-private", crop=(640, 430, 0, 0))
        ok(self.alive(), "psi: still running at the end",
           diag="".join(cwtest.tail(self.log, 20)))


class Dino(Gui):
    """Dino 0.4.2 has no host/port setting and wants a trusted certificate:
    it runs in its own network and mount namespaces (unshare) where
    localhost:5222 is a bridge (bridge.py) to the test's Prosody and the
    CA bundle holds Prosody's certificate.  Prosody has MAM on (Dino
    crashes joining a MAM room otherwise).  Its popovers (the occupant
    list) do not open without a window manager, so no private message."""
    name = "dino"
    prog = "dino-im"
    nick = "Kira"

    def command(self):
        base = os.path.dirname(self.home)
        ca = os.path.join(base, "ca.crt")
        with open(ca, "wb") as out:
            for path in ("/etc/ssl/certs/ca-certificates.crt",
                         self.env.server.cert):
                with open(path, "rb") as f:
                    out.write(f.read())
        sock = os.path.join(base, "c2s.sock")
        bridge = os.path.join(HERE, "bridge.py")
        self.outer = subprocess.Popen(
            [sys.executable, bridge, "unix-to-tcp", sock,
             str(self.env.server.c2s_port)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cwtest.on_exit(lambda: cwtest.stop_pid(self.outer.pid, 5,
                                                 popen=self.outer))
        cwtest.wait_until(lambda: os.path.exists(sock), 5)
        os.chmod(sock, 0o777)
        inner = os.path.join(base, "inner.sh")
        with open(inner, "w") as f:
            f.write("set -e\nip link set lo up\n"
                    "mount --bind %s /etc/ssl/certs/ca-certificates.crt\n"
                    "%s %s tcp-to-unix 5222 %s &\nsleep 0.3\nexec %s\n"
                    % (ca, sys.executable, bridge, sock, " ".join(
                        "'%s'" % a for a in as_user(
                            self.home, ["dbus-run-session", "--", self.prog],
                            {"DISPLAY": self.d.name}))))
        return ["unshare", "--net", "--mount", "sh", inner]

    def walk(self):
        d, bot, ok = self.d, self.env.bot, self.tap.ok
        if not ok(d.window("^Dino$", 40), "dino: starts in its own namespaces "
                  "(main window shown)", diag="".join(cwtest.tail(self.log, 20))):
            return
        time.sleep(2)
        d.press(600, 522)                      # Set up account
        d.press(200, 92)                       # JID
        d.type(self.jid)
        d.key("Return", pause=3)
        d.press(200, 99)                       # Password
        d.type(self.password)
        d.key("Return", pause=5)
        self.shot("01-all-set-up")
        d.press(199, 192)                      # Finish
        main = d.window("^Dino$")
        d.xdo("windowfocus", main)
        d.key("ctrl+g", pause=2)               # Join Channel
        g = d.window("^Join Channel$")
        if not ok(g, "dino: logs in (TLS, trusted) and opens Join Channel",
                  diag="see %s" % self.shots[-1]):
            return
        d.xdo("windowfocus", g)
        d.type(room_jid(), pause=1)
        d.press(234, 137)                      # the room in the list
        d.press(424, 28)                       # Next
        d.press(265, 171)                      # Nick
        d.type(self.nick)
        b0 = bot.mark()
        d.press(427, 28)                       # Join
        me = self.join_clicked(b0, "02-joined", crop=(1200, 700, 0, 0))
        if me is None:
            return
        self.chat(me, lambda: d.press(700, 662))
        self.change_nick(me, "Lena")
        time.sleep(2)
        self.shot("03-chat-nick", crop=(1200, 700, 0, 0))
        self.tap.skip("dino: private message", "the occupant list is a popover "
                      "that does not open without a window manager")
        ok(self.alive(), "dino: still running at the end",
           diag="".join(cwtest.tail(self.log, 20)))


def main():
    args = sys.argv[1:]
    docs = "--docs" in args
    args = [a for a in args if a != "--docs"]
    wanted = args or ["gajim", "psi", "dino"]
    tap = cwtest.Tap()
    outdir = (os.path.join(HERE, "..", "..", "docs", "clients") if docs
              else clientenv.artifacts_dir())
    os.makedirs(outdir, exist_ok=True)
    progs = {"gajim": "gajim", "psi": "psi", "dino": "dino-im"}
    missing = [c for c in ["Xvfb", "xdotool", "import", "dbus-run-session",
                           "inspircd"] + [progs[w] for w in wanted]
               if not cwtest.have(c)]
    if missing:
        tap.skip("graphical clients", "not installed: %s" % ", ".join(missing))
        return tap.finish()
    try:
        env = clientenv.Env(tap, "gui")
        disp = Display()
        tap.diag("gui: display %s; screenshots in %s" % (disp.name,
                                                         os.path.abspath(outdir)))
        for cls in (Gajim, Psi, Dino):
            if cls.name in wanted:
                c = cls(tap, env, disp, outdir)
                try:
                    c.walk()
                finally:
                    c.stop()
    except Exception as e:
        cwtest.mark_failed()
        tap.bail("gui: unexpected exception: %s" % e, e)
    rc = tap.finish()
    if rc:
        cwtest.mark_failed()
    return rc


if __name__ == "__main__":
    sys.exit(main())
