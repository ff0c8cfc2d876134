#!/usr/bin/env python3
"""Tiny XMPP c2s client for the S2Scope lab (Python 3 standard library only).

Plaintext c2s on port 5222, SASL PLAIN, resource binding, optional session,
then scripted actions.  It exists only to make real servers produce s2s
traffic on 5269; every wait is time-bounded.

Used as a module by drive.py, or stand-alone:

    c2s.py HOST JID PASSWORD ACTION...
    actions: msg:JID:TEXT  sub:JID  subd:JID  ping:JID  wait:SECONDS  expect-msg:SECONDS
"""
import base64
import socket
import sys
import time
import uuid
import xml.etree.ElementTree as ET

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_PING = "urn:xmpp:ping"


def esc(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


class C2SError(Exception):
    pass


class Client:
    def __init__(self, host, jid, password, port=5222, timeout=10.0, log=None):
        self.host = host
        self.port = port
        self.jid = jid
        self.local, self.domain = jid.split("@", 1)
        self.password = password
        self.timeout = timeout
        self.sock = None
        self.parser = None
        self.queue = []          # completed top-level elements
        self.depth = 0
        self.full_jid = None
        self.log = log or (lambda m: None)
        self.received = []       # every stanza received after binding

    # -- low level -------------------------------------------------------
    def _send(self, data):
        self.log("C2S %s >> %s" % (self.jid, data))
        self.sock.sendall(data.encode("utf-8"))

    def _open_stream(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self._send("<?xml version='1.0'?><stream:stream to='%s' xmlns='%s' "
                   "xmlns:stream='%s' version='1.0'>" % (self.domain, NS_CLIENT, NS_STREAM))

    def _pump(self, deadline):
        """Read once (bounded by deadline); feed the parser."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise C2SError("timeout")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise C2SError("timeout")
        if not data:
            raise C2SError("connection closed by server")
        self.parser.feed(data)
        for ev, el in self.parser.read_events():
            if ev == "start":
                self.depth += 1
                if self.depth == 1 and el.tag != "{%s}stream" % NS_STREAM:
                    raise C2SError("unexpected root %s" % el.tag)
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.queue.append(el)
                    root = None
                    # free memory of processed children is not a concern here
                elif self.depth == 0:
                    raise C2SError("stream closed by server")

    def next_element(self, timeout=None, match=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            for i, el in enumerate(self.queue):
                if match is None or match(el):
                    del self.queue[i]
                    if el.tag == "{%s}error" % NS_STREAM:
                        raise C2SError("stream error: %s" % ET.tostring(el).decode())
                    return el
            self._pump(deadline)

    # -- session setup ---------------------------------------------------
    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self._open_stream()
        feats = self.next_element(match=lambda e: e.tag == "{%s}features" % NS_STREAM)
        mechs = [m.text for m in feats.iter("{%s}mechanism" % NS_SASL)]
        if "PLAIN" not in mechs:
            raise C2SError("server offers no PLAIN (offered: %r)" % mechs)
        token = base64.b64encode(("\0%s\0%s" % (self.local, self.password)).encode()).decode()
        self._send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
        res = self.next_element()
        if res.tag != "{%s}success" % NS_SASL:
            raise C2SError("SASL failed: %s" % ET.tostring(res).decode())
        self._open_stream()
        feats = self.next_element(match=lambda e: e.tag == "{%s}features" % NS_STREAM)
        self._send("<iq type='set' id='bind1'><bind xmlns='%s'><resource>lab</resource></bind></iq>"
                   % NS_BIND)
        res = self.next_element(match=lambda e: e.get("id") == "bind1")
        j = res.find("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND))
        if res.get("type") != "result" or j is None:
            raise C2SError("bind failed: %s" % ET.tostring(res).decode())
        self.full_jid = j.text
        sess = feats.find("{%s}session" % NS_SESSION)
        if sess is not None and sess.find("{%s}optional" % NS_SESSION) is None:
            self._send("<iq type='set' id='sess1'><session xmlns='%s'/></iq>" % NS_SESSION)
            self.next_element(match=lambda e: e.get("id") == "sess1")
        # request the roster: servers deliver subscription presences only to
        # "interested" resources (RFC 6121 2.1.6)
        self._send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
        self.next_element(match=lambda e: e.get("id") == "roster1")
        self._send("<presence/>")
        return self

    # -- actions ---------------------------------------------------------
    def message(self, to, text):
        self._send("<message type='chat' to='%s' id='%s'><body>%s</body></message>"
                   % (esc(to), uuid.uuid4().hex[:8], esc(text)))

    def presence(self, to, show=None):
        """Directed available presence."""
        extra = "<show>%s</show>" % esc(show) if show else ""
        self._send("<presence to='%s'>%s</presence>" % (esc(to), extra))

    def subscribe(self, to):
        self._send("<presence type='subscribe' to='%s'/>" % esc(to))

    def subscribed(self, to):
        self._send("<presence type='subscribed' to='%s'/>" % esc(to))

    def ping(self, to, timeout=None):
        pid = "ping-" + uuid.uuid4().hex[:6]
        self._send("<iq type='get' to='%s' id='%s'><ping xmlns='%s'/></iq>" % (esc(to), pid, NS_PING))
        return self.next_element(timeout=timeout, match=lambda e: e.get("id") == pid)

    def wait_for(self, pred, timeout):
        """Return the first stanza matching pred within timeout, else None."""
        try:
            el = self.next_element(timeout=timeout, match=pred)
        except C2SError as e:
            if str(e) == "timeout":
                return None
            raise
        self.received.append(el)
        return el

    def drain(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self._pump(end)
            except C2SError as e:
                if str(e) == "timeout":
                    break
                raise
        self.received.extend(self.queue)
        self.queue = []

    def close(self):
        if self.sock is None:
            return
        try:
            self._send("</stream:stream>")
            self.sock.settimeout(2)
            try:
                while self.sock.recv(65536):
                    pass
            except OSError:
                pass
        finally:
            self.sock.close()
            self.sock = None


def is_message_from(bare):
    def pred(el):
        return (el.tag == "{%s}message" % NS_CLIENT
                and (el.get("from") or "").split("/")[0] == bare
                and el.find("{%s}body" % NS_CLIENT) is not None)
    return pred


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, jid, pw = argv[1:4]
    c = Client(host, jid, pw, log=lambda m: print(m, file=sys.stderr)).connect()
    try:
        for act in argv[4:]:
            kind, _, rest = act.partition(":")
            if kind == "msg":
                to, _, text = rest.partition(":")
                c.message(to, text)
            elif kind == "sub":
                c.subscribe(rest)
            elif kind == "subd":
                c.subscribed(rest)
            elif kind == "ping":
                print(ET.tostring(c.ping(rest)).decode())
            elif kind == "wait":
                c.drain(float(rest))
            else:
                raise SystemExit("unknown action " + act)
    finally:
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
