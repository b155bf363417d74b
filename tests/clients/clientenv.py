"""clientenv: what the stock-client tests share.

A real InspIRCd, a real Prosody (own template: STARTTLS offered, MAM and
carbons on) with causeway attached as irc.localhost, an IRC bot (a raw
client in the channel that sets its topic), an unprivileged Unix user to
run the clients as (poezio and Gajim refuse root), and a tmux driver that
types into a terminal client and reads its screen.

Built on tests/e2e/cwtest.py (ports picked free at run time, temp dirs,
every process stopped by PID on exit, TAP).

Run it by hand to get the same setup to play with:
  /usr/bin/python3 tests/clients/clientenv.py
prints the ports, the account and the room, and waits for Ctrl-C.
"""

import os
import pwd
import re
import secrets
import shlex
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import cwtest                                       # noqa: E402
from cwtest import Causeway, InspIRCd, IrcClient, Prosody  # noqa: E402

DOMAIN = "irc.localhost"
IRC_HOST = "127.0.0.1"            # the [irc-server] name in room JIDs
CHAN = "#chan"
TOPIC = "welcome to the client test"
BOT = "ircbot"
USER = os.environ.get("CW_CLIENT_USER", "cwclient")   # unprivileged account
HANDSHAKE = r"irc\.localhost: handshake accepted"


def room_jid(chan=CHAN):
    return "%s%%%s@%s" % (chan, IRC_HOST, DOMAIN)


def artifacts_dir():
    """Where screen captures and screenshots go: $CW_ARTIFACTS, else
    ./clients-artifacts."""
    d = os.environ.get("CW_ARTIFACTS") or os.path.abspath("clients-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


def ensure_user(name=USER):
    """The unprivileged account the clients run as: created (system
    account, no login shell, no home) when missing, kept afterwards so
    that parallel runs share it.  Returns its pwd entry."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise RuntimeError("no user %s and not root: cannot create it" % name)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                    "/usr/sbin/nologin", "--home-dir", "/nonexistent", name],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.STDOUT)
    return pwd.getpwnam(name)


def user_home(prefix):
    """A fresh temp dir owned by the client user, used as its $HOME."""
    pw = ensure_user()
    d = cwtest.make_tempdir(prefix)
    os.chmod(d, 0o755)
    home = os.path.join(d, "home")
    os.makedirs(home)
    os.makedirs(os.path.join(home, ".run"), mode=0o700)   # XDG_RUNTIME_DIR
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
    os.chown(d, pw.pw_uid, pw.pw_gid)
    return home


def chown_tree(path):
    pw = ensure_user()
    os.chown(path, pw.pw_uid, pw.pw_gid)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)


def as_user(home, argv, extra_env=None):
    """argv run as the client user with a clean environment and HOME."""
    env = {"HOME": home, "USER": USER, "TERM": "tmux-256color", "LOGNAME": USER, "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin",
           "XDG_CONFIG_HOME": os.path.join(home, ".config"),
           "XDG_DATA_HOME": os.path.join(home, ".local", "share"),
           "XDG_CACHE_HOME": os.path.join(home, ".cache"),
           "XDG_RUNTIME_DIR": os.path.join(home, ".run"),
           # No accessibility bus: it outlives the client's session bus.
           "NO_AT_BRIDGE": "1", "GTK_A11Y": "none"}
    env.update(extra_env or {})
    return (["runuser", "-u", USER, "--", "env", "-i"]
            + ["%s=%s" % kv for kv in sorted(env.items())] + list(argv))


class ClientProsody(Prosody):
    """cwtest.Prosody with tests/clients/prosody.cfg.lua.in and a
    self-signed certificate for localhost."""

    def __init__(self, **kw):
        super().__init__(**kw)
        r = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost",
             "-keyout", os.path.join(self.dir, "key.pem"),
             "-out", os.path.join(self.dir, "cert.pem")],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl: %s" % r.stdout.decode(errors="replace"))
        with open(os.path.join(HERE, "prosody.cfg.lua.in")) as f:
            text = f.read()
        for k, v in dict(DIR=self.dir, C2S_PORT=self.c2s_port,
                         COMPONENT_PORT=self.component_port,
                         DOMAIN=self.domain, SECRET=self.secret).items():
            text = text.replace("@%s@" % k, str(v))
        with open(self.cfg, "w") as f:
            f.write(text)

    @property
    def cert(self):
        return os.path.join(self.dir, "cert.pem")


class Bot(IrcClient):
    """The IRC side: a raw client in CHAN that set its topic."""

    def privmsgs(self, since=0):
        """(sender nick, target, text) of every PRIVMSG received."""
        out = []
        for _, line in self.find_all(lambda l: cwtest.irc_numeric(l) == "PRIVMSG",
                                     since):
            nick, _, params = cwtest.irc_parse(line)
            if len(params) >= 2:
                out.append((nick, params[0], params[1]))
        return out

    def wait_privmsg(self, text, target=None, timeout=10, since=0):
        """The (nick, target, text) of the first PRIVMSG whose text
        contains text (to target, if given), or None."""
        def pred(line):
            if cwtest.irc_numeric(line) != "PRIVMSG":
                return False
            _, _, p = cwtest.irc_parse(line)
            return len(p) >= 2 and text in p[1] and (
                target is None or p[0].lower() == target.lower())
        line = self.wait_for(pred, timeout, since)
        if line is None:
            return None
        nick, _, p = cwtest.irc_parse(line)
        return nick, p[0], p[1]

    def names(self, chan=CHAN, timeout=5):
        """The nicks in chan (NAMES, prefixes stripped)."""
        m = self.mark()
        self.send("NAMES " + chan)
        if not self.wait_for(lambda l: cwtest.irc_numeric(l) == "366", timeout, m):
            return None
        nicks = []
        for _, line in self.find_all(lambda l: cwtest.irc_numeric(l) == "353", m):
            nicks += [n.lstrip("@+%&~").split("!", 1)[0]
                      for n in cwtest.irc_parse(line)[2][-1].split()]
        return nicks


class Env:
    """InspIRCd + Prosody + causeway + the bot, and a fresh account.
    Every piece is stopped by PID on exit (cwtest's cleanup)."""

    def __init__(self, tap, label):
        self.tap = tap
        self.label = label
        self.t0 = time.monotonic()
        # Only causeway's log is dumped on a failure (the others are
        # named in a diagnostic line and kept with CWTEST_KEEP=1).
        self.ircd = InspIRCd()
        self.ircd.start()
        self.server = ClientProsody(domain=DOMAIN)
        self.server.start()
        tap.diag("%s: prosody log %s, inspircd log %s" % (label, self.server.log,
                                                         self.ircd.log))
        tap.diag("%s: CWTEST_KEEP=1 keeps these logs; a failure shows the "
                 "screen and what the IRC bot received" % label)
        # A fresh account per run, as a new user would have.
        self.user = "u%s" % secrets.token_hex(3)
        self.jid = "%s@localhost" % self.user
        self.password = "pw%s" % secrets.token_hex(4)
        self.server.register(self.user, self.password)
        self.cw = Causeway(self.server, name="causeway-" + label,
                           backend="irc", options={"linger": 0},
                           sections=[("irc-server %s" % IRC_HOST,
                                      {"port": self.ircd.port, "tls": "no",
                                       "throttle_burst": 20,
                                       "throttle_rate": 100})])
        self.cw.start()
        if not self.cw.wait_for(HANDSHAKE, 1, 20):
            raise RuntimeError("causeway did not attach as %s:\n%s" % (
                DOMAIN, "\n".join(cwtest.tail(self.cw.logfile, 15))))
        tap.diag("%s: causeway log %s" % (label, self.cw.logfile))
        self.bot = Bot(self.ircd.port, BOT)
        cwtest.on_exit(self.bot.close)
        if not self.bot.register():
            raise RuntimeError("the IRC bot could not register:\n" + self.bot.dump())
        if not self.bot.join(CHAN):
            raise RuntimeError("the IRC bot could not join:\n" + self.bot.dump())
        m = self.bot.mark()
        self.bot.send("TOPIC %s :%s" % (CHAN, TOPIC))
        if not self.bot.wait_for(r" TOPIC %s :" % CHAN, 5, m):
            raise RuntimeError("the bot could not set the topic:\n" + self.bot.dump())

    def new_account(self):
        """Another fresh Prosody account: (user, password)."""
        user = "u%s" % secrets.token_hex(3)
        password = "pw%s" % secrets.token_hex(4)
        self.server.register(user, password)
        return user, password

    def setup_seconds(self):
        return time.monotonic() - self.t0

    def cw_errors(self):
        return [l for _, l in self.cw.matching(r"(?i)\b(error|warn)")][-10:]


class Screen:
    """A terminal client in a private tmux server (its own socket in a
    temp dir), 'typed into' with send-keys and read with capture-pane.
    The tmux server runs as root; the client in its pane runs as the
    unprivileged user (as_user)."""

    def __init__(self, name, argv, width=200, height=50):
        self.name = name
        self.dir = cwtest.make_tempdir("cwclients-tmux-")
        self.sock = os.path.join(self.dir, "tmux.sock")
        self.server_pid = None
        self.pane_pid = None
        self.captures = []
        self.seq = 0
        cwtest.on_exit(self.stop)
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", name,
                   "-x", str(width), "-y", str(height),
                   " ".join(shlex.quote(a) for a in argv))
        self._tmux("set-option", "-g", "history-limit", "20000")
        self.server_pid = int(self._tmux("display-message", "-p", "#{pid}").strip())
        self.pane_pid = int(self._tmux("display-message", "-p", "#{pane_pid}").strip())
        self._tmux("set-option", "-t", name, "remain-on-exit", "on")

    def _tmux(self, *args, check=True):
        r = subprocess.run(["tmux", "-S", self.sock] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
        if check and r.returncode != 0:
            raise RuntimeError("tmux %s: %s" % (" ".join(args),
                                                r.stdout.decode(errors="replace")))
        return r.stdout.decode("utf-8", "replace")

    def type(self, text, enter=True, pause=0.3):
        """Type text as a person would (literally), then Enter."""
        if text:
            self._tmux("send-keys", "-t", self.name, "-l", text)
        if enter:
            time.sleep(0.1)
            self._tmux("send-keys", "-t", self.name, "Enter")
        time.sleep(pause)

    def key(self, *keys):
        self._tmux("send-keys", "-t", self.name, *keys)
        time.sleep(0.2)

    def text(self, history=False):
        """What the screen shows now (with the scrollback if history)."""
        args = ["capture-pane", "-p", "-t", self.name]
        if history:
            args += ["-S", "-"]
        return self._tmux(*args, check=False)

    def wait(self, pred, timeout=10, history=False):
        """Poll the screen until pred(text) (a regex string or a function)
        is true; returns the match/value, or None."""
        if isinstance(pred, str):
            rx = re.compile(pred, re.M)
            fn = rx.search
        else:
            fn = pred
        deadline = time.monotonic() + timeout
        while True:
            v = fn(self.text(history))
            if v or time.monotonic() >= deadline:
                return v or None
            time.sleep(0.25)

    def save(self, label, history=False):
        """Keep the screen as an artifact (DIR/NAME-NN-LABEL.txt)."""
        self.seq += 1
        path = os.path.join(artifacts_dir(), "%s-%02d-%s.txt"
                            % (self.name, self.seq, re.sub(r"\W+", "-", label)))
        with open(path, "w") as f:
            f.write(self.text(history))
        self.captures.append(path)
        return path

    def alive(self):
        return cwtest.pid_alive(self.pane_pid)

    def stop(self):
        """The client first (SIGTERM to the pane's process group, i.e.
        runuser and the client), then the tmux server, by PID."""
        if self.pane_pid and cwtest.pid_alive(self.pane_pid):
            try:
                os.killpg(os.getpgid(self.pane_pid), 15)
            except OSError:
                pass
            cwtest.wait_until(lambda: not cwtest.pid_alive(self.pane_pid), 5)
            if cwtest.pid_alive(self.pane_pid):
                try:
                    os.killpg(os.getpgid(self.pane_pid), 9)
                except OSError:
                    pass
        self.pane_pid = None
        if self.server_pid:
            cwtest.stop_pid(self.server_pid, 5)
            self.server_pid = None


def count_lines(text, needle):
    return sum(1 for l in text.splitlines() if needle in l)


def main():
    """The environment by hand: prints where everything is, waits."""
    tap = cwtest.Tap()
    env = Env(tap, "manual")
    print("prosody c2s 127.0.0.1:%d (STARTTLS offered, plain allowed)"
          % env.server.c2s_port)
    print("account %s password %s" % (env.jid, env.password))
    print("room %s   topic set by %s" % (room_jid(), BOT))
    print("inspircd 127.0.0.1:%d; dirs: %s %s" % (env.ircd.port, env.server.dir,
                                                  env.cw.dir))
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
