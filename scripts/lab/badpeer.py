#!/usr/bin/env python3
"""Misbehaving XMPP s2s peer for the S2Scope lab (Python 3 standard library only).

It plays the server for one domain (default evil.lab on 10.53.0.9) with its
own dialback secret, and implements just enough of RFC 3920 section 8 /
XEP-0220 to talk to a real Prosody:

* as Originating Server it opens a stream to a real server, sends a
  db:result with a XEP-0185 key and, once valid, stanzas;
* as Receiving Server (inbound connections on its own 5269) it answers
  db:result requests after verifying them on a verify-only connection to the
  sender's authoritative server;
* as Authoritative Server it answers db:verify requests with the XEP-0185
  recipe:  key = hex(HMAC-SHA256(key=hex(SHA256(secret)) as ASCII,
                                  msg = receiving + ' ' + originating + ' ' + stream_id)).

Each scenario breaks exactly ONE rule (see SCENARIOS below).  Everything is
time-bounded; the process exits by itself.  A JSON log of everything sent and
received on every connection is written with --log.

    badpeer.py --scenario NAME [--ip 10.53.0.9] [--domain evil.lab]
               [--secret S] [--peer a.lab=10.53.0.1 ...] [--target a.lab]
               [--log FILE] [--duration SECONDS]
"""
import argparse
import hashlib
import hmac
import json
import socket
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET

NS_STREAM = "http://etherx.jabber.org/streams"
NS_SERVER = "jabber:server"
NS_DB = "jabber:server:dialback"
T_STREAM = "{%s}stream" % NS_STREAM
T_FEATURES = "{%s}features" % NS_STREAM
T_ERROR = "{%s}error" % NS_STREAM
T_RESULT = "{%s}result" % NS_DB
T_VERIFY = "{%s}verify" % NS_DB

XML_DECL = "<?xml version='1.0'?>"
# users of the lab's real servers (stanzas from badpeer go to them)
USERS = {"a.lab": "alice", "b.lab": "bob", "c.lab": "carol", "e.lab": "eve"}


def dialback_key(secret, receiving, originating, stream_id):
    k = hashlib.sha256(secret.encode()).hexdigest().encode()
    return hmac.new(k, ("%s %s %s" % (receiving, originating, stream_id)).encode(),
                    hashlib.sha256).hexdigest()


# scenarios in which the real server connects to us first (we are its peer)
SERVER_SIDE = ("bad-no-id", "bad-valid-unverified", "bad-unswapped-result", "serve")
# a pre-XMPP-1.0 server: no `version` on its headers, no stream features
LEGACY = ("legacy-peer",)
# we are the authoritative server whose verify leg dies with the verify pending
VERIFY_LEG = {"verify-leg-error": "stream-error", "verify-leg-close": "close"}


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
            self.events.append({"t": round(time.time() - self.t0, 6), "conn": conn,
                                "kind": kind, "data": data})
        print("[badpeer %7.3f] %-10s %-6s %s" % (time.time() - self.t0, conn, kind, data),
              file=sys.stderr, flush=True)


class Stream:
    """One TCP connection carrying an XMPP s2s stream in each direction."""
    counter = 0
    counter_lock = threading.Lock()

    def __init__(self, sock, label, log):
        with Stream.counter_lock:
            Stream.counter += 1
            self.name = "%s%d" % (label, Stream.counter)
        self.sock = sock
        self.log = log
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.peer_header = None
        self.queue = []
        self.closed_by_peer = False     # saw </stream:stream> or EOF
        self.stream_error = None        # text of a received <stream:error>
        self.received_text = ""
        self.my_id = None

    # -- I/O -----------------------------------------------------------------
    def send(self, text):
        self.log.add(self.name, "send", text)
        try:
            self.sock.sendall(text.encode("utf-8"))
        except OSError as e:
            self.log.add(self.name, "senderr", str(e))
            raise Closed(str(e))

    def _pump(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout()
        except OSError as e:
            self.log.add(self.name, "recverr", str(e))
            self.closed_by_peer = True
            raise Closed(str(e))
        if not data:
            self.log.add(self.name, "eof", "")
            self.closed_by_peer = True
            raise Closed("eof")
        text = data.decode("utf-8", "replace")
        self.received_text += text
        self.log.add(self.name, "recv", text)
        try:
            self.parser.feed(data)
            events = list(self.parser.read_events())
        except ET.ParseError as e:
            self.log.add(self.name, "parseerr", str(e))
            raise Closed("parse error")
        for ev, el in events:
            if ev == "start":
                self.depth += 1
                if self.depth == 1:
                    self.peer_header = dict(el.attrib)
                    self.peer_header["_tag"] = el.tag
            else:
                self.depth -= 1
                if self.depth == 1:
                    if el.tag == T_ERROR:
                        self.stream_error = ET.tostring(el).decode()
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

    def watch(self, seconds):
        """Keep reading for up to `seconds` (or until the peer closes)."""
        deadline = time.monotonic() + seconds
        try:
            while not self.closed_by_peer:
                self._pump(deadline)
        except (Timeout, Closed):
            pass

    def close(self, send_close_tag=True, linger=2.0):
        if send_close_tag:
            try:
                self.send("</stream:stream>")
            except Closed:
                pass
        # wait for the peer's closing tag / FIN, bounded
        deadline = time.monotonic() + linger
        try:
            while not self.closed_by_peer:
                self._pump(deadline)
        except (Timeout, Closed):
            pass
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.watch(0.5)
        self.sock.close()
        self.log.add(self.name, "closed", "")


def wait_typed(stream, tag, frm, to, timeout):
    def m(el):
        return el.tag == tag and el.get("type") and el.get("from") == frm and el.get("to") == to
    return stream.next_element(timeout=timeout, match=m)


class Peer:
    def __init__(self, args, log):
        self.ip = args.ip
        self.domain = args.domain
        self.secret = args.secret
        self.peers = dict(p.split("=", 1) for p in args.peer)
        self.scenario = args.scenario
        self.log = log
        self.stop = threading.Event()
        self.inbound = []
        self.threads = []
        self.lsock = None
        self.notes = {}   # scenario observations for the truth file
        self.claim = getattr(args, "claim", None)

    # -- helpers ---------------------------------------------------------------
    def connect(self, domain, label="out"):
        ip = self.peers[domain]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((self.ip, 0))
        s.settimeout(5)
        s.connect((ip, 5269))
        st = Stream(s, label, self.log)
        self.log.add(st.name, "connect", "%s:%d -> %s:5269 (%s)" % (
            self.ip, s.getsockname()[1], ip, domain))
        return st

    def initial_header(self, to, frm=None, xmlns=NS_SERVER, dbns=NS_DB):
        version = "" if self.scenario in LEGACY else " version='1.0'"
        return ("%s<stream:stream xmlns='%s' xmlns:db='%s' xmlns:stream='%s' "
                "from='%s' to='%s'%s>" % (XML_DECL, xmlns, dbns, NS_STREAM,
                                          frm or self.domain, to, version))

    def key_for(self, receiving, stream_id, originating=None, secret=None):
        return dialback_key(secret or self.secret, receiving, originating or self.domain, stream_id)

    def open_out(self, target, frm=None, xmlns=NS_SERVER, dbns=NS_DB, want_features=True):
        st = self.connect(target)
        st.send(self.initial_header(target, frm=frm, xmlns=xmlns, dbns=dbns))
        hdr = st.wait_header()
        if want_features and self.scenario not in LEGACY:
            try:
                st.next_element(timeout=5, match=lambda e: e.tag == T_FEATURES)
            except Timeout:
                pass
        return st, hdr

    def dialback_out(self, target, timeout=10):
        """Open A toward target, run dialback for (self.domain, target); returns (stream, type)."""
        st, hdr = self.open_out(target)
        sid = hdr.get("id")
        st.send("<db:result from='%s' to='%s'>%s</db:result>"
                % (self.domain, target, self.key_for(target, sid)))
        el = wait_typed(st, T_RESULT, target, self.domain, timeout)
        return st, el.get("type")

    # -- inbound side (we are ACC: Receiving and Authoritative server) ----------
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
            self.log.add(st.name, "accept", "%s:%d -> %s:5269" % (addr[0], addr[1], self.ip))
            self.inbound.append(st)
            t = threading.Thread(target=self._serve, args=(st,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, st):
        try:
            self._serve_inner(st)
        except (Closed, Timeout) as e:
            self.log.add(st.name, "end", repr(e))
        except Exception as e:  # keep the lab running, but record it
            self.log.add(st.name, "exception", repr(e))
        finally:
            if not st.closed_by_peer and not self.stop.is_set():
                pass

    def _serve_inner(self, st):
        hdr = st.wait_header(timeout=10)
        st.my_id = uuid.uuid4().hex
        id_attr = "" if self.scenario == "bad-no-id" else " id='%s'" % st.my_id
        if self.scenario in LEGACY:
            # RFC 3920 4.4.1: a pre-1.0 server answers without `version` and
            # sends no stream features
            st.send("%s<stream:stream xmlns='%s' xmlns:db='%s' xmlns:stream='%s' from='%s' to='%s'%s>"
                    % (XML_DECL, NS_SERVER, NS_DB, NS_STREAM, self.domain, hdr.get("from", ""),
                       id_attr))
        else:
            st.send("%s<stream:stream xmlns='%s' xmlns:db='%s' xmlns:stream='%s' from='%s' to='%s'"
                    "%s version='1.0'><stream:features><dialback xmlns='urn:xmpp:features:dialback'>"
                    "<errors/></dialback></stream:features>"
                    % (XML_DECL, NS_SERVER, NS_DB, NS_STREAM, self.domain, hdr.get("from", ""),
                       id_attr))
        validated = set()
        while True:
            if self.stop.is_set():
                # end of the run: close our stream politely
                st.close(send_close_tag=True, linger=1.5)
                return
            try:
                el = st.next_element(timeout=0.5)
            except Timeout:
                continue
            except Closed:
                # peer closed its stream: close ours
                st.close(send_close_tag=True, linger=1.0)
                return
            if el.tag == T_RESULT and not el.get("type"):
                frm, to, key = el.get("from"), el.get("to"), (el.text or "").strip()
                if self.scenario == "bad-valid-unverified":
                    verdict = "valid"     # DB-CORR-9: never asked the authoritative server
                else:
                    verdict = self.verify_with_as(frm, to, st.my_id, key)
                if self.scenario == "bad-unswapped-result":
                    # DB-RCV-6: the answer repeats the request's from/to instead of swapping them
                    st.send("<db:result from='%s' to='%s' type='%s'/>" % (frm, to, verdict))
                    self.notes["verify_verdict"] = verdict
                    st.watch(4)
                    self.notes["reaction"] = st.stream_error
                    st.close(send_close_tag=True, linger=1.0)
                    return
                st.send("<db:result from='%s' to='%s' type='%s'/>" % (to, frm, verdict))
                if verdict == "valid":
                    validated.add((frm, to))
                else:
                    st.close()
                    return
            elif el.tag == T_VERIFY and not el.get("type"):
                frm, to, vid, key = el.get("from"), el.get("to"), el.get("id"), (el.text or "").strip()
                # (Prosody sends its db:verify over a new connection only after
                # that connection is authenticated: its own db:result is answered
                # normally first)
                leg = VERIFY_LEG.get(self.scenario)
                if leg == "stream-error":
                    # the verify leg dies: a stream error while the verify is pending
                    self.notes["verify_leg"] = "stream error on %s" % st.name
                    st.send("<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                            "</stream:error></stream:stream>")
                    st.close(send_close_tag=False, linger=1.0)
                    return
                if leg == "close":
                    # the verify leg dies: we close our stream with the verify pending
                    self.notes["verify_leg"] = "closed %s" % st.name
                    st.close(send_close_tag=True, linger=1.0)
                    return
                if to != self.domain:
                    st.send("<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                            "</stream:error></stream:stream>")
                    st.close(send_close_tag=False)
                    return
                good = hmac.compare_digest(key, self.key_for(frm, vid))
                reply_id = vid
                if self.scenario == "bad-verify-wrong-id":
                    reply_id = uuid.uuid4().hex   # DB-CORR-2: id not copied
                    self.notes["verify_request_id"] = vid
                    self.notes["verify_reply_id"] = reply_id
                st.send("<db:verify from='%s' to='%s' id='%s' type='%s'/>"
                        % (to, frm, reply_id, "valid" if good else "invalid"))
            else:
                self.log.add(st.name, "stanza", ET.tostring(el).decode()[:300])

    def verify_with_as(self, originating, receiving, stream_id, key):
        """Verify-only connection B to the authoritative server of `originating`."""
        if originating not in self.peers:
            return "invalid"
        b, hdr = self.open_out(originating, frm=receiving)
        try:
            b.send("<db:verify from='%s' to='%s' id='%s'>%s</db:verify>"
                   % (receiving, originating, stream_id, key))
            el = b.next_element(timeout=8, match=lambda e: e.tag == T_VERIFY and e.get("type")
                                and e.get("id") == stream_id)
            return "valid" if el.get("type") == "valid" else "invalid"
        except (Closed, Timeout):
            return "invalid"
        finally:
            b.close()   # XEP-0220: the RS closes a verify-only connection

    # -- scenarios (outbound side, we are INI) -----------------------------------
    def run(self, target, duration):
        fn = getattr(self, "sc_" + self.scenario.replace("-", "_"), None)
        if fn is None:
            raise SystemExit("unknown scenario " + self.scenario)
        self.listen()
        try:
            fn(target)
        except (Closed, Timeout) as e:
            self.log.add("main", "end", repr(e))
        # let the servers finish whatever they are doing (verify legs, closes)
        end = time.monotonic() + duration
        if self.scenario in SERVER_SIDE:
            # wait for the real server to connect to us, then give it time
            while time.monotonic() < end and not self.inbound:
                time.sleep(0.1)
            end = min(end, time.monotonic() + 4)
            while time.monotonic() < end:
                time.sleep(0.1)
        while time.monotonic() < end and any(not s.closed_by_peer for s in self.inbound):
            time.sleep(0.1)
        self.stop.set()
        for t in self.threads:
            t.join(timeout=3)
        self.lsock.close()

    def _send_and_watch(self, st, text, seconds=4):
        st.send(text)
        st.watch(seconds)
        self.notes["reaction"] = st.stream_error
        if not st.closed_by_peer:
            st.close()
        else:
            st.close(send_close_tag=True, linger=1.0)

    def _valid_then(self, target, stanza):
        st, verdict = self.dialback_out(target)
        self.notes["dialback"] = verdict
        if verdict != "valid":
            st.close()
            return
        self._send_and_watch(st, stanza)

    # The real servers are the acceptor (ACC) in these:
    def sc_bad_stream_ns(self, target):
        # STREAM-HDR-3: default namespace jabber:client on an s2s stream
        st = self.connect(target)
        st.send(self.initial_header(target, xmlns="jabber:client"))
        st.watch(3)
        self.notes["reaction"] = st.stream_error
        if not st.closed_by_peer:
            # the server went on: try dialback as a jabber:client stream
            sid = (st.peer_header or {}).get("id", "")
            st.send("<db:result from='%s' to='%s'>%s</db:result>"
                    % (self.domain, target, self.key_for(target, sid)))
            st.watch(4)
            self.notes["reaction"] = st.stream_error
        st.close(send_close_tag=not st.closed_by_peer, linger=1.0)

    def sc_bad_db_ns(self, target):
        # DB-NS-1: the db prefix is bound to a wrong URI (header and element)
        st, hdr = self.open_out(target, dbns="jabber:server:dialbak")
        self._send_and_watch(st, "<db:result from='%s' to='%s'>%s</db:result>"
                             % (self.domain, target, self.key_for(target, hdr.get("id"))))

    def sc_bad_unhosted_result(self, target):
        # db:result for a target the server does not host (DB-RCV-2 reaction test)
        st, hdr = self.open_out(target)
        other = "other.lab"
        self._send_and_watch(st, "<db:result from='%s' to='%s'>%s</db:result>"
                             % (self.domain, other, self.key_for(other, hdr.get("id"))))

    def sc_bad_no_to(self, target):
        self._valid_then(target, "<message from='mallory@%s/lab' type='chat' id='noto1'>"
                         "<body>stanza without to</body></message>" % self.domain)

    def sc_bad_no_from(self, target):
        self._valid_then(target, "<message to='alice@%s' type='chat' id='nofrom1'>"
                         "<body>stanza without from</body></message>" % target)

    def sc_bad_spoofed_from(self, target):
        self._valid_then(target, "<message from='bob@b.lab/lab' to='alice@%s' type='chat' "
                         "id='spoof1'><body>spoofed from</body></message>" % target)

    def sc_bad_xml_comment(self, target):
        st, hdr = self.open_out(target)
        self._send_and_watch(st, "<!-- XML comments are restricted XML -->")

    def sc_bad_xml_pi(self, target):
        st, hdr = self.open_out(target)
        self._send_and_watch(st, "<?lab-pi processing instructions are restricted XML?>")

    def sc_bad_early_stanza(self, target):
        # DB-RES-3: a stanza right behind the db:result, before type='valid'.
        # Both go out in ONE send() with Nagle off: with two send() calls the
        # kernel holds the small second segment until the first is ACKed, and
        # on loopback that ACK rides on the server's <db:result type='valid'/>,
        # so the stanza would reach the wire only after validation.
        st, hdr = self.open_out(target)
        st.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        st.send("<db:result from='%s' to='%s'>%s</db:result>"
                "<message from='mallory@%s/lab' to='alice@%s' type='chat' id='early1'>"
                "<body>sent before validation</body></message>"
                % (self.domain, target, self.key_for(target, hdr.get("id")),
                   self.domain, target))
        try:
            el = wait_typed(st, T_RESULT, target, self.domain, 10)
            self.notes["dialback"] = el.get("type")
        except (Timeout, Closed):
            self.notes["dialback"] = None
        st.watch(2)
        self.notes["reaction"] = st.stream_error
        st.close(send_close_tag=not st.closed_by_peer or True, linger=1.0)

    def sc_bad_verify_unknown_id(self, target):
        # we act as Receiving Server and ask the real server (as Authoritative
        # Server) to verify a key for a stream id it never issued to anyone
        st, hdr = self.open_out(target)
        fake_id = "unknown-" + uuid.uuid4().hex[:12]
        key = hashlib.sha256(fake_id.encode()).hexdigest()
        st.send("<db:verify from='%s' to='%s' id='%s'>%s</db:verify>"
                % (self.domain, target, fake_id, key))
        try:
            el = st.next_element(timeout=6, match=lambda e: e.tag == T_VERIFY)
            self.notes["reaction"] = ET.tostring(el).decode()
        except (Timeout, Closed):
            self.notes["reaction"] = st.stream_error
        st.close(send_close_tag=not st.closed_by_peer, linger=1.0)

    def sc_verify_unhosted(self, target):
        # db:verify whose `to` is a domain the authoritative server does not host
        st, hdr = self.open_out(target)
        sid = "sid-" + uuid.uuid4().hex[:12]
        other = "other.lab"
        st.send("<db:verify from='%s' to='%s' id='%s'>%s</db:verify>"
                % (self.domain, other, sid, dialback_key("some-secret", self.domain, other, sid)))
        st.watch(4)
        self.notes["reaction"] = st.stream_error
        if st.stream_error is None:
            for el in st.queue:
                if el.tag == T_VERIFY:
                    self.notes["reaction"] = ET.tostring(el).decode()
        st.close(send_close_tag=not st.closed_by_peer, linger=1.0)

    def sc_wrong_secret(self, target):
        # We claim to speak for a.lab toward `target` but only know a wrong
        # secret: the receiving server asks a.lab's real server, which says invalid.
        claimed = "a.lab"
        st, hdr = self.open_out(target, frm=claimed)
        sid = hdr.get("id")
        st.send("<db:result from='%s' to='%s'>%s</db:result>"
                % (claimed, target, dialback_key("not-the-secret-of-a.lab", target, claimed, sid)))
        try:
            el = wait_typed(st, T_RESULT, target, claimed, 12)
            self.notes["dialback"] = el.get("type")
            self.notes["reaction"] = ET.tostring(el).decode()
        except (Timeout, Closed):
            self.notes["dialback"] = None
        # does the receiving server close the stream after invalid?  Wait longer
        # than the analyzer's reaction timer (T_react, e.g. 10 s) before closing.
        st.watch(12)
        self.notes["rs_closed_stream"] = st.closed_by_peer
        st.close(send_close_tag=True, linger=2.0)

    def sc_bad_verify_wrong_id(self, target):
        # We are the originating server; when the real server dials back to us
        # (authoritative for evil.lab) we answer the db:verify with another id.
        st, hdr = self.open_out(target)
        st.send("<db:result from='%s' to='%s'>%s</db:result>"
                % (self.domain, target, self.key_for(target, hdr.get("id"))))
        try:
            el = wait_typed(st, T_RESULT, target, self.domain, 8)
            self.notes["dialback"] = el.get("type")
            self.notes["reaction"] = ET.tostring(el).decode()
        except Timeout:
            self.notes["dialback"] = None
        except Closed:
            self.notes["dialback"] = None
            self.notes["reaction"] = st.stream_error
        st.close(send_close_tag=not st.closed_by_peer, linger=1.0)

    # -- the real server is the receiving server of our initial stream ----------
    def _result_then_wait(self, st, sender, target, key, seconds):
        """Wait up to `seconds` for the typed db:result for (sender, target); note it."""
        try:
            el = wait_typed(st, T_RESULT, target, sender, seconds)
            self.notes["dialback"] = el.get("type")
            self.notes["reaction"] = ET.tostring(el).decode()
        except Timeout:
            self.notes["dialback"] = None
        except Closed:
            self.notes["dialback"] = None
            self.notes["reaction"] = st.stream_error

    def sc_verify_leg_error(self, target):
        # We are the originating server (evil.lab) on A.  When the receiving
        # server dials back to evil.lab (we are also its authoritative server),
        # the verify leg dies (see VERIFY_LEG in _serve_inner).  What does the
        # receiving server then tell us on A?  Wait longer than T_react.
        st, hdr = self.open_out(target)
        st.send("<db:result from='%s' to='%s'>%s</db:result>"
                % (self.domain, target, self.key_for(target, hdr.get("id"))))
        self._result_then_wait(st, self.domain, target, None, 14)
        if self.notes.get("dialback") is None and not st.closed_by_peer:
            st.watch(0.5)
        self.notes["rs_closed_stream"] = st.closed_by_peer
        self.notes["rs_stream_error"] = st.stream_error
        st.close(send_close_tag=not st.closed_by_peer, linger=1.5)

    sc_verify_leg_close = sc_verify_leg_error

    def _claimed(self, target):
        # the domain we pretend to speak for: a real server of the lab whose
        # authoritative server will not vouch for our key
        return self.claim or ("b.lab" if target == "a.lab" else "a.lab")

    def sc_unsolicited_verify(self, target):
        # xmpp.org security notice 2012-08-21: on our own initial stream we ask
        # for (claimed, target) with a key made from a wrong secret, and at once
        # send the typed db:verify an authoritative server would send, with the
        # receiving server's stream id, hoping it takes it as the AS's answer.
        claimed = self._claimed(target)
        st, hdr = self.open_out(target, frm=claimed)
        sid = hdr.get("id")
        st.send("<db:result from='%s' to='%s'>%s</db:result>"
                "<db:verify from='%s' to='%s' id='%s' type='valid'/>"
                % (claimed, target, dialback_key("not-the-secret", target, claimed, sid),
                   claimed, target, sid))
        self._result_then_wait(st, claimed, target, None, 12)
        st.watch(12)
        self.notes["rs_closed_stream"] = st.closed_by_peer
        st.close(send_close_tag=not st.closed_by_peer, linger=2.0)

    def sc_unsolicited_result(self, target):
        # The same notice, other form: a typed db:result type='valid' sent on
        # our initial stream as if we were the receiving server answering.
        claimed = self._claimed(target)
        st, hdr = self.open_out(target, frm=claimed)
        st.send("<db:result from='%s' to='%s' type='valid'/>" % (claimed, target))
        self._result_then_wait(st, claimed, target, None, 12)
        st.watch(12)
        self.notes["rs_closed_stream"] = st.closed_by_peer
        st.close(send_close_tag=not st.closed_by_peer, linger=2.0)

    def sc_legacy_peer(self, target):
        # A pre-1.0 server: no `version` on the header, no features expected,
        # dialback, then one message.
        st = self.connect(target)
        st.send(self.initial_header(target))
        hdr = st.wait_header()
        st.watch(1.0)    # anything the acceptor sends after its header (features?)
        self.notes["features_received"] = any(e.tag == T_FEATURES for e in st.queue)
        st.send("<db:result from='%s' to='%s'>%s</db:result>"
                % (self.domain, target, self.key_for(target, hdr.get("id"))))
        try:
            el = wait_typed(st, T_RESULT, target, self.domain, 10)
            self.notes["dialback"] = el.get("type")
        except (Timeout, Closed):
            self.notes["dialback"] = None
            self.notes["reaction"] = st.stream_error
        if self.notes["dialback"] == "valid":
            user = USERS.get(target, "user")
            st.send("<message from='mallory@%s/lab' to='%s@%s' type='chat' id='legacy1'>"
                    "<body>hello from a pre-1.0 server</body></message>" % (self.domain, user, target))
            st.watch(1.5)
        st.close(send_close_tag=not st.closed_by_peer, linger=1.5)

    def sc_repeated_valid(self, target):
        # After a valid dialback and one message, the same db:result again on the
        # same stream (piggybacking the pair that is already validated): does the
        # receiving server answer `valid` a second time?
        st, verdict = self.dialback_out(target)
        self.notes["dialback"] = verdict
        if verdict != "valid":
            st.close()
            return
        user = USERS.get(target, "user")
        st.send("<message from='mallory@%s/lab' to='%s@%s' type='chat' id='rep1'>"
                "<body>first message</body></message>" % (self.domain, user, target))
        st.watch(0.5)
        st.send("<db:result from='%s' to='%s'>%s</db:result>"
                % (self.domain, target, self.key_for(target, st.peer_header.get("id"))))
        try:
            el = wait_typed(st, T_RESULT, target, self.domain, 10)
            self.notes["second_answer"] = el.get("type")
            self.notes["reaction"] = ET.tostring(el).decode()
        except (Timeout, Closed):
            self.notes["second_answer"] = None
            self.notes["reaction"] = st.stream_error
        if not st.closed_by_peer:
            st.send("<message from='mallory@%s/lab' to='%s@%s' type='chat' id='rep2'>"
                    "<body>second message</body></message>" % (self.domain, user, target))
            st.watch(1.0)
        st.close(send_close_tag=not st.closed_by_peer, linger=1.5)

    # The real server is the initiator in these; a c2s client makes it connect
    # to us, we only serve (see _serve_inner).  The driver waits for us.
    def sc_bad_no_id(self, target):
        pass

    def sc_bad_valid_unverified(self, target):
        pass

    def sc_bad_unswapped_result(self, target):
        pass

    def sc_serve(self, target):   # plain well-behaved server, for sanity checks
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--ip", default="10.53.0.9")
    ap.add_argument("--domain", default="evil.lab")
    ap.add_argument("--secret", default="evil-lab-dialback-secret")
    ap.add_argument("--peer", action="append", default=[],
                    help="DOMAIN=IP of real servers (authoritative addresses)")
    ap.add_argument("--target", default="a.lab")
    ap.add_argument("--log")
    ap.add_argument("--duration", type=float, default=6.0,
                    help="max seconds to keep serving inbound connections after the scenario")
    ap.add_argument("--ready-file", help="touch this file once listening")
    args = ap.parse_args()
    log = Log()
    p = Peer(args, log)
    if args.ready_file:
        # the driver starts us first for server-side scenarios
        orig_listen = p.listen

        def listen_and_flag():
            orig_listen()
            open(args.ready_file, "w").close()
        p.listen = listen_and_flag
    try:
        p.run(args.target, args.duration)
    finally:
        if args.log:
            with open(args.log, "w") as f:
                json.dump({"scenario": args.scenario, "notes": p.notes, "events": log.events}, f,
                          indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
