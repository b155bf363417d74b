"""mailenv: a throw-away mail system for causeway's email tests.

Dovecot (IMAP with STARTTLS on one port and implicit TLS on another,
LMTP for delivery, and its auth service for Postfix) and a private
Postfix instance (submission with STARTTLS + AUTH, handing every
recipient to Dovecot's LMTP) in one temp dir, on free 127.0.0.1 ports,
with a self-signed certificate for "localhost" that the gateway trusts
through its ca_file.  make_cert() makes further ones (another trusted
certificate, an untrusted one, an expired one) for fakeimap.py.
Nothing outside the temp dir is read or changed
except Postfix's own meta_directory files; processes are stopped by PID.

The config text lives here, not in templates, so the tests run from any
tree.  Users: alice@example.test, bob@example.net, victim@example.net
(passwords in MailEnv.passwords).  The submission server refuses the
recipient nosuch@example.net at RCPT with a 550 (a recipient access
table), so a permanent failure can be tested.
"""

import imaplib
import os
import smtplib
import ssl
import subprocess
import time

import cwtest

DOVECOT_CONF = """\
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {dir}/run
instance_name = dovecot-cw-{tag}
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
auth_verbose = yes
ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0s
mail_uid = mail
mail_gid = mail
first_valid_uid = 8
last_valid_uid = 8
mail_location = maildir:{dir}/mail/%d/%n/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = home={dir}/mail/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
service auth {{
  inet_listener auth-postfix {{
    address = 127.0.0.1
    port = {auth}
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@example.test
}}
namespace inbox {{
  inbox = yes
  mailbox "Sent Messages" {{
    special_use = \\Sent
  }}
}}
"""

# A "#" after a value would be part of it: no trailing comments here.
# Dovecot's own submission service (dovecot-submissiond), a proxy that
# relays what it accepts to Postfix's plain port: STARTTLS on one port,
# implicit TLS on another.
DOVECOT_SUBMISSION = """\
protocols = $protocols submission
hostname = mx.example.test
submission_relay_host = 127.0.0.1
submission_relay_port = {smtp}
submission_relay_trusted = yes
service submission-login {{
  inet_listener submission {{
    address = 127.0.0.1
    port = {dsub}
  }}
  inet_listener submissions {{
    address = 127.0.0.1
    port = {dsubs}
    ssl = yes
  }}
}}
"""

POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {dir}/pf/queue
data_directory = {dir}/pf/data
meta_directory = /etc/postfix
maillog_file = {dir}/pf/maillog
maillog_file_prefixes = {dir}
myhostname = mx.example.test
mydomain = example.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtp_dns_support_level = disabled
default_transport = lmtp:inet:127.0.0.1:{lmtp}
relay_transport = lmtp:inet:127.0.0.1:{lmtp}
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access inline:{{ {{ nosuch@example.net = 550 5.1.1 no such user here }} }}, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_tls_cert_file = {dir}/cert.pem
smtpd_tls_key_file = {dir}/key.pem
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth}
smtpd_sasl_auth_enable = no
"""

POSTFIX_MASTER = """\
127.0.0.1:{smtp} inet n - n - - smtpd
127.0.0.1:{submission} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def make_cert(directory, name, expired=False):
    """A certificate for "localhost" in directory: (cert, key, trust),
    trust being what a client must trust for it.  Self-signed (trust is
    the certificate itself), or with expired=True issued by a CA of its
    own (trust is the CA, valid) but valid only in January 2020 ("openssl
    ca" takes explicit dates), so that expiry is its only fault."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    quiet = dict(check=True, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)

    def selfsigned(c, k, cn, ext):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-days", "30", "-subj", "/CN=" + cn, "-addext", ext,
             "-keyout", k, "-out", c], **quiet)
    if not expired:
        selfsigned(cert, key, "localhost", "subjectAltName=DNS:localhost")
        return cert, key, cert
    ca = os.path.join(directory, name + "-ca")
    os.makedirs(ca)
    ca_cert = os.path.join(ca, "ca.pem")
    ca_key = os.path.join(ca, "ca.key")
    selfsigned(ca_cert, ca_key, "causeway test CA " + name,
               "basicConstraints=critical,CA:TRUE")
    open(os.path.join(ca, "index.txt"), "w").close()
    with open(os.path.join(ca, "serial"), "w") as f:
        f.write("01\n")
    with open(os.path.join(ca, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndir = %s\ndatabase = "
                "$dir/index.txt\nserial = $dir/serial\nnew_certs_dir = "
                "$dir\ndefault_md = sha256\npolicy = p\ncopy_extensions = "
                "copy\nunique_subject = no\n[p]\ncommonName = supplied\n"
                % ca)
    csr = os.path.join(ca, "req.csr")
    subprocess.run(
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj",
         "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", key, "-out", csr], **quiet)
    subprocess.run(
        ["openssl", "ca", "-batch", "-config", os.path.join(ca, "ca.cnf"),
         "-cert", ca_cert, "-keyfile", ca_key, "-in", csr, "-startdate",
         "20200101000000Z", "-enddate", "20200201000000Z", "-out", cert],
        **quiet)
    return cert, key, ca_cert


class MailEnv:
    passwords = {"alice@example.test": "alicepw",
                 "bob@example.net": "bobpw",
                 "victim@example.net": "victimpw",
                 "carol@example.test": "carolpw"}

    def __init__(self, tap=None, submission=False, idle_notify=None,
                 ip_san=False):
        """submission: Dovecot's submission service too, STARTTLS on
        self.dsub and implicit TLS on self.dsubs.  idle_notify: seconds between Dovecot's
        "* OK Still here" during IDLE (default 2 minutes), and every IMAP
        session recorded in self.rawlog (Dovecot's rawlog: *.in is what
        the client sent).  ip_san: the certificate names 127.0.0.1 too
        (else only localhost: an IP-literal host does not match it)."""
        self.tap = tap
        self.with_dsub = submission
        self.dir = cwtest.make_tempdir("cwtest-mail-")
        os.chmod(self.dir, 0o755)       # "mail" and "postfix" traverse it
        (self.imap, self.imaps, self.lmtp, self.auth, self.smtp,
         self.submission) = cwtest.free_ports(6)
        self.dovecot = None
        self.master_pid = None
        self.cert = os.path.join(self.dir, "cert.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-days", "30", "-subj", "/CN=localhost", "-addext",
             "subjectAltName=DNS:localhost" + (",IP:127.0.0.1" if ip_san
                                               else ""), "-keyout",
             os.path.join(self.dir, "key.pem"), "-out", self.cert],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(os.path.join(self.dir, "key.pem"), 0o644)
        self.dsub, self.dsubs = cwtest.free_ports(2) if submission else \
            (None, None)
        self.rawlog = os.path.join(self.dir, "rawlog")
        if idle_notify:
            subprocess.run(["install", "-d", "-o", "mail", "-g", "mail",
                            self.rawlog], check=True)
        v = dict(dir=self.dir, tag=os.getpid(), imap=self.imap,
                 imaps=self.imaps, lmtp=self.lmtp, auth=self.auth,
                 smtp=self.smtp, submission=self.submission,
                 dsub=self.dsub, dsubs=self.dsubs)
        with open(os.path.join(self.dir, "dovecot.conf"), "w") as f:
            f.write(DOVECOT_CONF.format(**v))
            if submission:
                f.write(DOVECOT_SUBMISSION.format(**v))
            if submission:
                # Its tests register many JIDs for one mailbox.
                f.write("protocol imap {\n  mail_max_userip_connections "
                        "= 100\n}\n")
            if idle_notify:
                f.write("protocol imap {\n  imap_idle_notify_interval = "
                        "%d secs\n  rawlog_dir = %s\n}\n"
                        % (idle_notify, self.rawlog))
        with open(os.path.join(self.dir, "users"), "w") as f:
            for u, p in self.passwords.items():
                f.write("%s:{PLAIN}%s\n" % (u, p))
        subprocess.run(["install", "-d", "-o", "mail", "-g", "mail", "-m",
                        "0750", os.path.join(self.dir, "mail")], check=True)
        os.makedirs(os.path.join(self.dir, "pf", "queue"))
        subprocess.run(["install", "-d", "-o", "postfix", "-g", "postfix",
                        os.path.join(self.dir, "pf", "data")], check=True)
        with open(os.path.join(self.dir, "pf", "main.cf"), "w") as f:
            f.write(POSTFIX_MAIN.format(**v))
        with open(os.path.join(self.dir, "pf", "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER.format(**v))
        if tap:
            tap.watch("dovecot log", self.dovecot_log)
            tap.watch("postfix log", os.path.join(self.dir, "pf", "maillog"))
        cwtest.on_exit(self.stop)

    @property
    def dovecot_log(self):
        return os.path.join(self.dir, "dovecot.log")

    # -- processes --

    def start(self, timeout=30):
        self.start_dovecot(timeout)
        self.start_postfix(timeout)

    def start_dovecot(self, timeout=30):
        out = open(os.path.join(self.dir, "dovecot.out"), "ab")
        self.dovecot = subprocess.Popen(
            ["dovecot", "-F", "-c", os.path.join(self.dir, "dovecot.conf")],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT)
        out.close()
        if not cwtest.wait_until(
                lambda: all(cwtest.port_open(p) for p in
                            (self.imap, self.imaps, self.lmtp, self.auth) +
                            ((self.dsub, self.dsubs) if self.dsub else ())),
                timeout):
            raise RuntimeError("dovecot did not open its ports")

    def start_postfix(self, timeout=30):
        out = open(os.path.join(self.dir, "pf", "fg.out"), "ab")
        # postfix start-fg execs master; its PID is in the pid file.
        self.postfix_popen = subprocess.Popen(
            ["postfix", "-c", os.path.join(self.dir, "pf"), "start-fg"],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT)
        out.close()
        pidfile = os.path.join(self.dir, "pf", "queue", "pid", "master.pid")
        if not cwtest.wait_until(
                lambda: cwtest.port_open(self.submission) and
                os.path.exists(pidfile), timeout):
            raise RuntimeError("postfix did not open its ports")
        with open(pidfile) as f:
            self.master_pid = int(f.read().strip())

    def stop_postfix(self):
        if self.master_pid is None:
            return
        subprocess.run(["postfix", "-c", os.path.join(self.dir, "pf"),
                        "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
        cwtest.wait_until(lambda: not cwtest.pid_alive(self.master_pid), 15)
        cwtest.stop_pid(self.master_pid, 5)
        if self.postfix_popen is not None:
            cwtest.stop_pid(self.postfix_popen.pid, 5,
                            popen=self.postfix_popen)
        self.master_pid = None
        cwtest.wait_until(lambda: not cwtest.port_open(self.submission), 10)

    def stop_dovecot(self):
        if self.dovecot is not None:
            cwtest.stop_pid(self.dovecot.pid, 10, popen=self.dovecot)
            self.dovecot = None
            cwtest.wait_until(lambda: not any(
                cwtest.port_open(p) for p in (self.imap, self.imaps,
                                               self.lmtp, self.auth)), 10)

    def stop(self):
        self.stop_postfix()
        self.stop_dovecot()

    # -- mail --

    def deliver(self, rcpt, message, sender="sender@example.net"):
        """Deliver raw message (bytes or str) to rcpt over LMTP."""
        if isinstance(message, str):
            message = message.encode()
        with smtplib.LMTP("127.0.0.1", self.lmtp, timeout=120) as l:
            l.sendmail(sender, [rcpt], message)

    def imap_login(self, user):
        ctx = ssl.create_default_context(cafile=self.cert)
        m = imaplib.IMAP4_SSL("localhost", self.imaps, ssl_context=ctx)
        m.login(user, self.passwords[user])
        return m

    def messages(self, user):
        """Every message in user's INBOX, raw bytes, oldest first."""
        m = self.imap_login(user)
        try:
            m.select("INBOX", readonly=True)
            typ, data = m.uid("SEARCH", None, "ALL")
            out = []
            for uid in (data[0] or b"").split():
                typ, d = m.uid("FETCH", uid, "(BODY.PEEK[])")
                for part in d:
                    if isinstance(part, tuple):
                        out.append(part[1])
            return out
        finally:
            m.logout()

    def wait_message(self, user, pred, timeout=20):
        """The first raw message in user's INBOX for which pred(bytes) is
        true, waiting up to timeout; None if none came."""
        found = []

        def look():
            for raw in self.messages(user):
                if pred(raw):
                    found.append(raw)
                    return True
            return False
        cwtest.wait_until(look, timeout, 0.3)
        return found[0] if found else None

    def mailbox(self, user, box):
        """Every message in box, (flags, raw bytes), oldest first; None
        when the mailbox does not exist."""
        m = self.imap_login(user)
        try:
            typ, _ = m.select('"%s"' % box, readonly=True)
            if typ != "OK":
                return None
            typ, data = m.uid("SEARCH", None, "ALL")
            out = []
            for uid in (data[0] or b"").split():
                typ, d = m.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                for part in d:
                    if isinstance(part, tuple):
                        out.append((part[0], part[1]))
            return out
        finally:
            m.logout()

    def create_mailbox(self, user, box):
        m = self.imap_login(user)
        try:
            m.create('"%s"' % box)
        finally:
            m.logout()

    def maildir(self, user, box):
        """The directory of box in user's Maildir (Dovecot's layout)."""
        local, domain = user.split("@")
        return os.path.join(self.dir, "mail", domain, local, "Maildir",
                            "." + box)

    def flags(self, user, needle):
        """The FLAGS of the first message containing needle."""
        m = self.imap_login(user)
        try:
            m.select("INBOX", readonly=True)
            typ, data = m.uid("SEARCH", None, "ALL")
            for uid in (data[0] or b"").split():
                typ, d = m.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                for part in d:
                    if isinstance(part, tuple) and needle in part[1]:
                        return part[0]
            return None
        finally:
            m.logout()
