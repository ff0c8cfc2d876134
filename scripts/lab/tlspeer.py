#!/usr/bin/env python3
"""XMPP s2s peer that runs Server Dialback INSIDE STARTTLS, with a TLS key log.

Python 3 standard library only (ssl, socket, threading, xml.etree).  It plays
the server for one domain (default evil.lab on 10.53.0.9, the lab address of the peer) and talks to a real
Prosody that has s2s_require_encryption = true and s2s_secure_auth = false:

* as Originating Server: connect to the target on 5269, <starttls/>, TLS
  handshake (as TLS client), restarted stream, <db:result> with a XEP-0185
  key, and once valid one <iq type='get'> ping;
* as Receiving/Authoritative Server: accept the target's dial-back connection
  on its own 5269, offer <starttls><required/>, answer <proceed/>, TLS
  handshake (as TLS server, self-signed certificate), restarted stream, then
  answer <db:verify> with the XEP-0185 key and verify the target's own
  <db:result> on a verify-only connection (also STARTTLS) to the target.

Every TLS session's secrets go to --keylog (NSS key log format, written by
OpenSSL through ssl.SSLContext.keylog_filename), so the capture can be
decrypted.  A JSON log of everything sent/received (plaintext) goes to --log.

    tlspeer.py --cert C --key K --keylog FILE --log FILE
               [--ip 10.53.0.9] [--domain evil.lab] [--secret S]
               [--peer a.lab=10.53.0.1] [--target a.lab]
               [--tls 1.3|1.2] [--duration SECONDS]

--tls 1.2 restricts every session to TLS 1.2 with AEAD suites: the outgoing
dialback connection offers ECDHE-RSA-AES256-GCM-SHA384, the verify-only
connection ECDHE-RSA-AES128-GCM-SHA256, and the inbound (TLS server) side
accepts only ECDHE-RSA-CHACHA20-POLY1305, so one capture covers three suites.
"""
import argparse
import hashlib
import hmac
import json
import socket
import ssl
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET

NS_STREAM = "http://etherx.jabber.org/streams"
NS_SERVER = "jabber:server"
NS_DB = "jabber:server:dialback"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
T_FEATURES = "{%s}features" % NS_STREAM
T_ERROR = "{%s}error" % NS_STREAM
T_RESULT = "{%s}result" % NS_DB
T_VERIFY = "{%s}verify" % NS_DB
T_STARTTLS = "{%s}starttls" % NS_TLS
T_PROCEED = "{%s}proceed" % NS_TLS
XML_DECL = "<?xml version='1.0'?>"


def dialback_key(secret, receiving, originating, stream_id):
    """XEP-0185: hex(HMAC-SHA256(key = hex(SHA256(secret)), receiving ' ' originating ' ' id))."""
    k = hashlib.sha256(secret.encode()).hexdigest().encode()
    return hmac.new(k, ("%s %s %s" % (receiving, originating, stream_id)).encode(),
                    hashlib.sha256).hexdigest()


class Closed(Exception):
    pass


class Timeout(Exception):
    pass


class Log:
    def __init__(self):
        self.lock = threading.Lock()
        self.t0 = time.time()
        self.events = []

    def add(self, conn, kind, data):
        with self.lock:
            self.events.append({"t": round(time.time() - self.t0, 6), "conn": conn, "kind": kind, "data": data})
        print("[tlspeer %7.3f] %-6s %-8s %s" % (time.time() - self.t0, conn, kind, data), file=sys.stderr, flush=True)


class Stream:
    """One TCP connection; the XML parser is re-created at each stream restart (after TLS)."""
    counter = 0
    lock = threading.Lock()

    def __init__(self, sock, label, log):
        with Stream.lock:
            Stream.counter += 1
            self.name = "%s%d" % (label, Stream.counter)
        self.sock = sock
        self.log = log
        self.tls = False
        self.closed_by_peer = False
        self.my_id = None
        self.restart()

    def restart(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.peer_header = None
        self.queue = []

    def send(self, text):
        self.log.add(self.name, "send", text)
        try:
            self.sock.sendall(text.encode("utf-8"))
        except OSError as e:
            raise Closed(str(e))

    def _pump(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise Timeout()
        except OSError as e:
            self.closed_by_peer = True
            raise Closed(str(e))
        if not data:
            self.closed_by_peer = True
            self.log.add(self.name, "eof", "")
            raise Closed("eof")
        self.log.add(self.name, "recv", data.decode("utf-8", "replace"))
        try:
            self.parser.feed(data)
            events = list(self.parser.read_events())
        except ET.ParseError as e:
            raise Closed("parse error: %s" % e)
        for ev, el in events:
            if ev == "start":
                self.depth += 1
                if self.depth == 1:
                    self.peer_header = dict(el.attrib)
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.queue.append(el)
                elif self.depth == 0:
                    self.closed_by_peer = True

    def wait_header(self, timeout=8):
        deadline = time.monotonic() + timeout
        while self.peer_header is None:
            self._pump(deadline)
        return self.peer_header

    def next_element(self, timeout=8, match=None):
        deadline = time.monotonic() + timeout
        while True:
            for i, el in enumerate(self.queue):
                if match is None or match(el):
                    del self.queue[i]
                    return el
            if self.closed_by_peer:
                raise Closed("stream closed")
            self._pump(deadline)

    def start_tls(self, ctx, server_side, server_hostname=None):
        """Wrap the socket after <proceed/>; the XML stream restarts."""
        self.sock.settimeout(10)
        self.sock = ctx.wrap_socket(self.sock, server_side=server_side, server_hostname=server_hostname)
        self.tls = True
        self.log.add(self.name, "tls", "%s %s" % (self.sock.version(), self.sock.cipher()[0]))
        self.restart()

    def close(self, linger=2.0):
        try:
            self.send("</stream:stream>")
        except Closed:
            pass
        deadline = time.monotonic() + linger
        try:
            while not self.closed_by_peer:
                self._pump(deadline)
        except (Timeout, Closed):
            pass
        if self.tls:
            try:   # close_notify (an encrypted alert record)
                self.sock.settimeout(1.0)
                self.sock = self.sock.unwrap()
            except (OSError, ValueError, ssl.SSLError):
                pass
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.log.add(self.name, "closed", "")


class Peer:
    def __init__(self, args, log):
        self.args = args
        self.ip = args.ip
        self.domain = args.domain
        self.secret = args.secret
        self.peers = dict(p.split("=", 1) for p in args.peer)
        self.log = log
        self.stop = threading.Event()
        self.threads = []
        self.inbound = []
        self.outbound = []
        self.notes = {"dialbacks": []}
        self.tls12 = args.tls == "1.2"

    # -- TLS contexts ------------------------------------------------------------
    def _versions(self, ctx):
        if self.tls12:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        ctx.keylog_filename = self.args.keylog
        ctx.options |= ssl.OP_NO_TICKET     # no session tickets: every session is a full handshake

    def client_ctx(self, cipher):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE      # s2s_secure_auth = false: dialback authenticates
        self._versions(ctx)
        if self.tls12:
            ctx.set_ciphers(cipher)
        return ctx

    def server_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.args.cert, self.args.key)
        self._versions(ctx)
        if self.tls12:
            ctx.set_ciphers("ECDHE-RSA-CHACHA20-POLY1305")
        return ctx

    # -- outbound (we are the initiating side) ------------------------------------
    def header(self, to, frm):
        return ("%s<stream:stream xmlns='%s' xmlns:db='%s' xmlns:stream='%s' from='%s' to='%s' version='1.0'>"
                % (XML_DECL, NS_SERVER, NS_DB, NS_STREAM, frm, to))

    def open_out(self, target, frm, cipher, label):
        ip = self.peers[target]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((self.ip, 0))
        s.settimeout(5)
        s.connect((ip, 5269))
        st = Stream(s, label, self.log)
        self.outbound.append(st)
        self.log.add(st.name, "connect", "%s:%d -> %s:5269 (%s)" % (self.ip, s.getsockname()[1], ip, target))
        st.send(self.header(target, frm))
        st.wait_header()
        feats = st.next_element(match=lambda e: e.tag == T_FEATURES)
        if feats.find(T_STARTTLS) is None:
            raise Closed("no <starttls/> offered")
        st.send("<starttls xmlns='%s'/>" % NS_TLS)
        st.next_element(match=lambda e: e.tag == T_PROCEED)
        st.start_tls(self.client_ctx(cipher), server_side=False, server_hostname=target)
        st.send(self.header(target, frm))
        hdr = st.wait_header()
        st.next_element(match=lambda e: e.tag == T_FEATURES)
        return st, hdr

    def originate(self, target):
        st, hdr = self.open_out(target, self.domain, "ECDHE-RSA-AES256-GCM-SHA384", "out")
        sid = hdr.get("id")
        st.send("<db:result from='%s' to='%s'>%s</db:result>"
                % (self.domain, target, dialback_key(self.secret, target, self.domain, sid)))
        el = st.next_element(timeout=15, match=lambda e: e.tag == T_RESULT and e.get("type"))
        self.notes["dialbacks"].append({"originating": self.domain, "receiving": target, "outcome": el.get("type"),
                                        "stream_id": sid})
        if el.get("type") == "valid":
            st.send("<iq type='get' id='tls-ping-1' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                    % (self.domain, target))
        return st

    def verify_with_as(self, originating, receiving, stream_id, key):
        b, _ = self.open_out(originating, receiving, "ECDHE-RSA-AES128-GCM-SHA256", "vrf")
        try:
            b.send("<db:verify from='%s' to='%s' id='%s'>%s</db:verify>" % (receiving, originating, stream_id, key))
            el = b.next_element(timeout=10, match=lambda e: e.tag == T_VERIFY and e.get("type")
                                and e.get("id") == stream_id)
            return "valid" if el.get("type") == "valid" else "invalid"
        except (Closed, Timeout):
            return "invalid"
        finally:
            b.close()   # XEP-0220: the receiving server closes a verify-only connection

    # -- inbound (we are the receiving / authoritative side) ----------------------
    def listen(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.ip, 5269))
        ls.listen(8)
        ls.settimeout(0.2)
        self.lsock = ls
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept_loop(self):
        while not self.stop.is_set():
            try:
                s, addr = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            st = Stream(s, "in", self.log)
            self.inbound.append(st)
            self.log.add(st.name, "accept", "%s:%d" % addr)
            t = threading.Thread(target=self._serve, args=(st,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, st):
        try:
            self._serve_inner(st)
        except (Closed, Timeout) as e:
            self.log.add(st.name, "end", repr(e))
        except Exception as e:
            self.log.add(st.name, "exception", repr(e))

    def _answer_header(self, st, hdr, features):
        st.my_id = uuid.uuid4().hex
        st.send("%s<stream:stream xmlns='%s' xmlns:db='%s' xmlns:stream='%s' from='%s' to='%s' id='%s' version='1.0'>"
                "<stream:features>%s</stream:features>"
                % (XML_DECL, NS_SERVER, NS_DB, NS_STREAM, self.domain, hdr.get("from", ""), st.my_id, features))

    def _serve_inner(self, st):
        hdr = st.wait_header(timeout=10)
        self._answer_header(st, hdr, "<starttls xmlns='%s'><required/></starttls>" % NS_TLS)
        st.next_element(timeout=10, match=lambda e: e.tag == T_STARTTLS)
        st.send("<proceed xmlns='%s'/>" % NS_TLS)
        st.start_tls(self.server_ctx(), server_side=True)
        hdr = st.wait_header(timeout=10)
        self._answer_header(st, hdr, "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>")
        while not self.stop.is_set():
            try:
                el = st.next_element(timeout=0.5)
            except Timeout:
                continue
            if el.tag == T_VERIFY and not el.get("type"):
                frm, to, vid, key = el.get("from"), el.get("to"), el.get("id"), (el.text or "").strip()
                good = to == self.domain and hmac.compare_digest(key, dialback_key(self.secret, frm, to, vid))
                st.send("<db:verify from='%s' to='%s' id='%s' type='%s'/>"
                        % (to, frm, vid, "valid" if good else "invalid"))
            elif el.tag == T_RESULT and not el.get("type"):
                frm, to, key = el.get("from"), el.get("to"), (el.text or "").strip()
                verdict = self.verify_with_as(frm, to, st.my_id, key) if frm in self.peers else "invalid"
                self.notes["dialbacks"].append({"originating": frm, "receiving": to, "outcome": verdict,
                                                "stream_id": st.my_id})
                st.send("<db:result from='%s' to='%s' type='%s'/>" % (to, frm, verdict))
            else:
                self.log.add(st.name, "element", ET.tostring(el).decode()[:300])
        st.close(linger=1.5)

    def run(self, target, duration):
        self.listen()
        st = None
        try:
            st = self.originate(target)
        except (Closed, Timeout) as e:
            self.log.add("main", "end", repr(e))
        end = time.monotonic() + duration
        while time.monotonic() < end:
            time.sleep(0.1)
        if st is not None:
            st.close(linger=2.0)
        time.sleep(1.0)
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)
        self.lsock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ip", default="10.53.0.9")
    ap.add_argument("--domain", default="evil.lab")
    ap.add_argument("--secret", default="evil-lab-dialback-secret")
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--target", default="a.lab")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--keylog", required=True)
    ap.add_argument("--tls", choices=["1.3", "1.2"], default="1.3")
    ap.add_argument("--log")
    ap.add_argument("--duration", type=float, default=6.0)
    args = ap.parse_args()
    if not args.peer:
        args.peer = ["a.lab=10.53.0.1"]
    log = Log()
    peer = Peer(args, log)
    peer.run(args.target, args.duration)
    if args.log:
        with open(args.log, "w") as f:
            json.dump({"events": log.events, "notes": peer.notes}, f, indent=1)
    print(json.dumps(peer.notes))


if __name__ == "__main__":
    main()
