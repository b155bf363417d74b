"""smsenv: a private Kannel (bearerbox + smsbox + fakesmsc) for causeway's
SMS end-to-end tests.

Kannel runs from a config this module writes into a temp dir, on free
loopback ports: bearerbox with a "fake" SMSC link, smsbox with the
sendsms interface and one catch-all sms-service whose get-url is the
callback contract causeway documents, and Kannel's fakesmsc (package
kannel-extras) connected to the fake link in interactive mode: each MO
is one line written to its stdin, and every MT it receives is printed
as "Got message N: <from to type text>".  Processes are stopped by PID.
"""

import os
import re
import subprocess
import urllib.parse

from cwtest import (LOOPBACK, free_ports, make_tempdir, on_exit, pid_alive,
                    port_open, stop_pid, wait_until)

FAKESMSC = "/usr/lib/kannel/test/fakesmsc"

# The contract of conf/causeway.conf.example: where incoming texts go.
MO_QUERY = "from=%p&to=%P&text=%a&coding=%c&charset=%C&smsc=%i&id=%I&ts=%t"

CONFIG = """\
group = core
admin-port = {admin_port}
admin-interface = 127.0.0.1
admin-password = {admin_pass}
admin-allow-ip = "127.0.0.1"
smsbox-port = {smsbox_port}
smsbox-interface = 127.0.0.1
box-deny-ip = "*.*.*.*"
box-allow-ip = "127.0.0.1"
log-file = "{dir}/bearerbox.log"
log-level = 0
access-log = "{dir}/access.log"
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = FAKE
host = 127.0.0.1
port = {fake_port}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox_port}
sendsms-port = {sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{dir}/smsbox.log"
log-level = 0
mo-recode = true
http-request-retry = 30
http-queue-delay = 1

group = sendsms-user
username = {user}
password = {password}
user-allow-ip = "127.0.0.1"
concatenation = true
max-messages = 10

group = sms-service
keyword = default
catch-all = true
max-messages = 0
get-url = "{mo_url}?{mo_query}"
"""


class Kannel:
    def __init__(self, mo_url, user="cwgw", password="cw-send-pass", tap=None):
        self.dir = make_tempdir("cwtest-kannel-")
        self.user, self.password = user, password
        (self.admin_port, self.smsbox_port, self.fake_port,
         self.sendsms_port) = free_ports(4)
        self.conf = os.path.join(self.dir, "kannel.conf")
        with open(self.conf, "w") as f:
            f.write(CONFIG.format(
                dir=self.dir, admin_port=self.admin_port,
                admin_pass="cw-admin", smsbox_port=self.smsbox_port,
                fake_port=self.fake_port, sendsms_port=self.sendsms_port,
                user=user, password=password, mo_url=mo_url,
                mo_query=MO_QUERY))
        self.fake_out = os.path.join(self.dir, "fake.out")
        self.bb = self.sb = self.fk = None
        self.tap = tap
        if tap:
            tap.watch("bearerbox log", os.path.join(self.dir, "bearerbox.log"))
            tap.watch("smsbox log", os.path.join(self.dir, "smsbox.log"))
            tap.watch("fakesmsc output", self.fake_out)
        on_exit(self.stop)

    @property
    def sendsms_url(self):
        return "http://127.0.0.1:%d/cgi-bin/sendsms" % self.sendsms_port

    def _spawn(self, args, out):
        f = open(os.path.join(self.dir, out), "ab")
        p = subprocess.Popen(args, cwd=self.dir, stdout=f,
                             stderr=subprocess.STDOUT,
                             stdin=subprocess.PIPE if args[0] == FAKESMSC
                             else subprocess.DEVNULL)
        f.close()
        return p

    def start(self, timeout=20):
        self.bb = self._spawn(["bearerbox", "-v", "1", self.conf], "bb.out")
        if not wait_until(lambda: port_open(self.smsbox_port), timeout):
            raise RuntimeError("bearerbox did not open %d; see %s"
                               % (self.smsbox_port, self.dir))
        self.sb = self._spawn(["smsbox", "-v", "1", self.conf], "sb.out")
        if not wait_until(lambda: port_open(self.sendsms_port), timeout):
            raise RuntimeError("smsbox did not open %d; see %s"
                               % (self.sendsms_port, self.dir))
        # Interactive fakesmsc: one MO per line on stdin, MTs on stdout.
        self.fk = self._spawn([FAKESMSC, "-H", LOOPBACK, "-r",
                               str(self.fake_port), "-i", "0.01"],
                              "fake.out")
        if not wait_until(self.link_online, timeout, 0.2):
            raise RuntimeError("the FAKE link did not come online; see %s"
                               % self.dir)

    def link_online(self):
        import urllib.request
        try:
            with urllib.request.urlopen(
                    "http://127.0.0.1:%d/status.txt?password=cw-admin"
                    % self.admin_port, timeout=2) as r:
                text = r.read().decode("utf-8", "replace")
        except OSError:
            return False
        return re.search(r"FAKE\[FAKE\].*\(online", text) is not None

    def stop(self):
        for name in ("fk", "sb", "bb"):
            p = getattr(self, name)
            if p is not None:
                if p.stdin:
                    try:
                        p.stdin.close()
                    except OSError:
                        pass
                stop_pid(p.pid, 10, popen=p)
                setattr(self, name, None)

    def running(self):
        return self.bb is not None and pid_alive(self.bb.pid)

    def mo(self, sender, receiver, text, kind="text"):
        """An SMS from a phone (sender) to receiver through the fake SMSC.
        kind "text": text as is (one line); "ucs2": text as UTF-16BE,
        percent-encoded as fakesmsc wants it."""
        if kind == "ucs2":
            text = urllib.parse.quote_from_bytes(text.encode("utf-16-be"),
                                                 safe="")
        line = "%s %s %s %s\n" % (sender, receiver, kind, text)
        self.fk.stdin.write(line.encode("utf-8"))
        self.fk.stdin.flush()

    def mts(self):
        """MTs fakesmsc received: a list of (from, to, type, data) with
        data as fakesmsc printed it (URL-encoded for ucs-2 and udh)."""
        try:
            with open(self.fake_out, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        out = []
        for m in re.finditer(r"Got message \d+: <(\S+) (\S+) (\S+) ?(.*)>$",
                             text, re.M):
            out.append(m.groups())
        return out


def decode_mt(kind, data):
    """The text of one MT part as fakesmsc printed it."""
    if kind == "text":
        return urllib.parse.unquote(data) if "%" in data else data
    raw = urllib.parse.unquote_to_bytes(data)
    if kind in ("ucs-2", "ucs2"):
        return raw.decode("utf-16-be", "replace")
    return raw.decode("latin-1")
