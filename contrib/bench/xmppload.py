"""xmppload: a small asyncio XMPP c2s client and a raw IRC client for the
causeway/biboumi benchmark (contrib/bench/bench.py).

Standard library only.  Hundreds of these run in one event loop, which
slixmpp cannot do cheaply.  What the XMPP client does, and nothing more:
plaintext stream on loopback (no STARTTLS), SASL PLAIN, resource binding,
initial presence, iqs with an id (awaitable), MUC join presence,
groupchat send, and a callback for every <message/> and <presence/>.
Incoming XML is parsed incrementally with ElementTree.XMLPullParser; each
top-level stanza is handed over as an Element and then dropped.
"""

import asyncio
import base64
import itertools
import time
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT = "jabber:client"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
C = "{%s}" % NS_CLIENT

_ids = itertools.count(1)


class XmppError(Exception):
    pass


class XmppClient:
    """One c2s connection.  on_stanza(kind, element) is called for every
    message and presence ("message"/"presence"); iq answers resolve the
    futures returned by iq()."""

    def __init__(self, host, port, user, domain, password, resource="bench"):
        self.host, self.port = host, port
        self.user, self.domain, self.password = user, domain, password
        self.resource = resource
        self.jid = None
        self.reader = self.writer = None
        self.parser = None
        self.root = None
        self.depth = 0
        self.queue = None           # stanzas during login
        self.pending = {}           # iq id -> future
        self.on_stanza = None
        self.task = None
        self.closed = False
        self.error = None

    # -- stream plumbing --------------------------------------------------

    def _new_parser(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.root = None

    def _open(self):
        self._new_parser()
        self.writer.write((
            "<?xml version='1.0'?><stream:stream to=%s version='1.0' "
            "xmlns='jabber:client' xmlns:stream='%s'>"
            % (quoteattr(self.domain), NS_STREAM)).encode())

    def send(self, data):
        if self.writer is not None and not self.closed:
            self.writer.write(data.encode("utf-8") if isinstance(data, str) else data)

    async def drain(self):
        if self.writer is not None and not self.closed:
            await self.writer.drain()

    def _feed(self, data):
        """Parse data; return the complete top-level elements."""
        out = []
        self.parser.feed(data)
        for ev, el in self.parser.read_events():
            if ev == "start":
                self.depth += 1
                if self.depth == 1:
                    self.root = el
            else:
                self.depth -= 1
                if self.depth == 1:
                    out.append(el)
                    try:
                        self.root.remove(el)
                    except ValueError:
                        pass
                elif self.depth == 0:
                    raise XmppError("stream closed by server")
        return out

    async def _next(self, timeout=30):
        """Next top-level element while logging in."""
        while not self.queue:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise XmppError("connection closed during login")
            self.queue.extend(self._feed(data))
        return self.queue.pop(0)

    # -- login ------------------------------------------------------------

    async def login(self, timeout=30):
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=1 << 20), timeout)
        self.queue = []
        self._open()
        feats = await self._next(timeout)
        if feats.tag != "{%s}features" % NS_STREAM:
            raise XmppError("expected stream features, got %s" % feats.tag)
        mechs = [m.text for m in feats.iter("{%s}mechanism" % NS_SASL)]
        if "PLAIN" not in mechs:
            raise XmppError("no SASL PLAIN offered (%s)" % mechs)
        token = base64.b64encode(("\0%s\0%s" % (self.user, self.password))
                                 .encode()).decode()
        self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
        r = await self._next(timeout)
        if r.tag != "{%s}success" % NS_SASL:
            raise XmppError("SASL failed for %s: %s" % (self.user, ET.tostring(r)[:200]))
        self.queue = []
        self._open()
        feats = await self._next(timeout)
        self.send("<iq type='set' id='bind1'><bind xmlns='%s'><resource>%s"
                  "</resource></bind></iq>" % (NS_BIND, escape(self.resource)))
        while True:
            r = await self._next(timeout)
            if r.tag == C + "iq" and r.get("id") == "bind1":
                break
        if r.get("type") != "result":
            raise XmppError("bind failed: %s" % ET.tostring(r)[:200])
        self.jid = r.findtext("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND))
        # Prosody 0.12 still offers the (optional) session iq; skip it.
        self.send("<presence/>")
        left, self.queue = self.queue, None
        self.task = asyncio.get_running_loop().create_task(self._run(left))
        return self.jid

    async def _run(self, left):
        try:
            for el in left:
                self._dispatch(el)
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for el in self._feed(data):
                    self._dispatch(el)
        except (OSError, XmppError, ET.ParseError) as e:
            self.error = repr(e)
        except asyncio.CancelledError:
            pass
        finally:
            self.closed = True
            for f in self.pending.values():
                if not f.done():
                    f.set_exception(XmppError("connection lost"))
            self.pending.clear()

    def _dispatch(self, el):
        tag = el.tag
        if tag == C + "iq":
            f = self.pending.pop(el.get("id"), None)
            if f is not None and not f.done():
                f.set_result(el)
            elif el.get("type") in ("get", "set"):
                self.send("<iq type='error' id=%s to=%s><error type='cancel'>"
                          "<service-unavailable xmlns='urn:ietf:params:xml:ns:"
                          "xmpp-stanzas'/></error></iq>"
                          % (quoteattr(el.get("id") or ""),
                             quoteattr(el.get("from") or self.domain)))
        elif tag == C + "message":
            if self.on_stanza:
                self.on_stanza("message", el)
        elif tag == C + "presence":
            if self.on_stanza:
                self.on_stanza("presence", el)

    # -- requests ---------------------------------------------------------

    def iq(self, to, payload, itype="get"):
        """Send an iq; returns a future resolving to the answer element."""
        iid = "q%d" % next(_ids)
        f = asyncio.get_running_loop().create_future()
        self.pending[iid] = f
        self.send("<iq type=%s id=%s to=%s>%s</iq>"
                  % (quoteattr(itype), quoteattr(iid), quoteattr(to), payload))
        return f

    def join(self, room, nick):
        self.send("<presence to=%s><x xmlns='%s'/></presence>"
                  % (quoteattr("%s/%s" % (room, nick)), NS_MUC))

    def leave(self, room, nick):
        self.send("<presence type='unavailable' to=%s/>"
                  % quoteattr("%s/%s" % (room, nick)))

    @staticmethod
    def groupchat_xml(room, body):
        return ("<message type='groupchat' to=%s><body>%s</body></message>"
                % (quoteattr(room), escape(body)))

    async def close(self):
        if self.writer is not None and not self.closed:
            try:
                self.writer.write(b"</stream:stream>")
                await asyncio.wait_for(self.writer.drain(), 2)
            except Exception:
                pass
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:
                pass
        self.closed = True


def muc_status_codes(el):
    return {s.get("code") for s in
            el.iterfind("{%s}x/{%s}status" % (NS_MUC_USER, NS_MUC_USER))}


class IrcBot:
    """A raw IRC client: registers, joins, answers PING, counts lines.
    on_line(line, t) is called for each line with its arrival time
    (time.perf_counter())."""

    def __init__(self, host, port, nick):
        self.host, self.port, self.nick = host, port, nick
        self.reader = self.writer = None
        self.on_line = None
        self.task = None
        self.waiters = []           # (predicate, future)
        self.closed = False

    async def connect(self, timeout=20):
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=1 << 20), timeout)
        self.task = asyncio.get_running_loop().create_task(self._run())
        f = self.wait(lambda l: l.split()[1:2] in (["376"], ["422"]))
        self.send("NICK %s" % self.nick)
        self.send("USER %s 0 * :bench bot" % self.nick)
        await asyncio.wait_for(f, timeout)

    def send(self, line):
        self.writer.write(line.encode("utf-8") + b"\r\n")

    def wait(self, pred):
        f = asyncio.get_running_loop().create_future()
        self.waiters.append((pred, f))
        return f

    async def join(self, chans, timeout=60):
        """Join the channels; wait for the end of each NAMES (366)."""
        want = {c.lower() for c in chans}
        got = set()
        done = asyncio.get_running_loop().create_future()

        def pred(line):
            p = line.split()
            if len(p) > 3 and p[1] == "366":
                got.add(p[3].lower())
                if want <= got and not done.done():
                    done.set_result(True)
            return False
        self.waiters.append((pred, done))
        for c in chans:
            self.send("JOIN %s" % c)
        await asyncio.wait_for(done, timeout)

    async def _run(self):
        try:
            while True:
                raw = await self.reader.readline()
                if not raw:
                    break
                t = time.perf_counter()
                line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                if line.startswith("PING "):
                    self.send("PONG " + line[5:])
                    continue
                if self.on_line:
                    self.on_line(line, t)
                if self.waiters:
                    keep = []
                    for pred, f in self.waiters:
                        if f.done():
                            continue
                        if pred(line):
                            f.set_result(line)
                        else:
                            keep.append((pred, f))
                    self.waiters = keep
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True

    async def close(self):
        if self.writer is not None and not self.closed:
            try:
                self.send("QUIT :bench done")
                await asyncio.wait_for(self.writer.drain(), 2)
            except Exception:
                pass
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:
                pass
        self.closed = True
