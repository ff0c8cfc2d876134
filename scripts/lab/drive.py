#!/usr/bin/env python3
"""Traffic driver for one lab scenario (runs inside the lab network namespace).

    drive.py SCENARIO OBSERVATIONS.json [PHASE]

Real-server scenarios use c2s.py clients to make the servers federate;
misbehaving-peer scenarios run badpeer.Peer in-process.  Writes what was
observed (delivery results, the peer's notes and its full I/O log) to
OBSERVATIONS.json.  Exit status 0 when the traffic went as planned, 1 otherwise
(the capture is still kept; run-lab.sh reports the failure).

PHASE (default `main`):
  setup  midstream-* only: federate before the capture starts
  main   the traffic the capture is meant to hold
  hold   not-xmpp-probes only: open the non-XMPP connections, write
         OBSERVATIONS.json.ready, keep them open until SIGTERM, then close them
"""
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import badpeer  # noqa: E402
from c2s import Client, C2SError, is_message_from, NS_CLIENT  # noqa: E402

IPS = {"a.lab": "10.53.0.1", "b.lab": "10.53.0.2", "e.lab": "10.53.0.3", "c.lab": "10.53.0.4",
       "evil.lab": "10.53.0.9", "lazy.lab": "10.53.0.10"}
SCAN_IP = "10.53.0.20"
USERS = {"a.lab": ("alice", "pw-alice"), "b.lab": ("bob", "pw-bob"), "e.lab": ("eve", "pw-eve"),
         "c.lab": ("carol", "pw-carol")}
PEER_SECRETS = {"evil.lab": "evil-lab-dialback-secret", "lazy.lab": "lazy-lab-dialback-secret"}
ROTATE_SECONDS = float(os.environ.get("ROTATE_SECONDS", "6"))

obs = {"ok": True, "steps": []}


def step(name, ok, detail=""):
    obs["steps"].append({"step": name, "ok": bool(ok), "detail": detail})
    if not ok:
        obs["ok"] = False
    print("[drive] %-40s %s %s" % (name, "ok" if ok else "FAILED", detail), file=sys.stderr, flush=True)


def client(domain, jid=None):
    """A logged-in c2s client of `domain`; `jid` may spell the user and domain in another case."""
    user, pw = USERS[domain]
    return Client(IPS[domain], jid or "%s@%s" % (user, domain), pw,
                  log=lambda m: print("  " + m[:200], file=sys.stderr)).connect()


def bare(jid):
    return jid.split("/")[0].lower()


def is_presence(frm, ptype):
    def pred(el):
        return (el.tag == "{%s}presence" % NS_CLIENT and el.get("type") == ptype
                and bare(el.get("from") or "") == bare(frm))
    return pred


def is_message_from_ci(jid):
    """A message with a body whose sender's bare JID equals `jid` ignoring case."""
    def pred(el):
        return (el.tag == "{%s}message" % NS_CLIENT and bare(el.get("from") or "") == bare(jid)
                and el.find("{%s}body" % NS_CLIENT) is not None)
    return pred


def federate(d1, d2, full=True):
    """Two users on two real servers exchange messages, a subscription and pings."""
    c1, c2 = client(d1), client(d2)
    j1, j2 = c1.jid, c2.jid
    try:
        c1.message(j2, "hello from %s" % d1)
        step("message %s -> %s" % (d1, d2), c2.wait_for(is_message_from(j1), 10) is not None)
        c2.message(j1, "hello from %s" % d2)
        step("message %s -> %s" % (d2, d1), c1.wait_for(is_message_from(j2), 10) is not None)
        if full:
            c1.subscribe(j2)
            step("presence subscribe %s -> %s" % (j1, j2),
                 c2.wait_for(is_presence(j1, "subscribe"), 10) is not None)
            c2.subscribed(j1)
            step("presence subscribed %s -> %s" % (j2, j1),
                 c1.wait_for(is_presence(j2, "subscribed"), 10) is not None)
            ping(c1, d2)
            ping(c2, d1)
    finally:
        c1.close()
        c2.close()


def ping(c, domain):
    r = c.ping(domain, timeout=10)
    step("ping %s -> %s" % (c.jid, domain), r.get("type") == "result", ET.tostring(r).decode())


def chatter(d1, d2, rounds=2):
    """More stanzas over an established federation: logins (presence, probes),
    messages, directed presence and pings both ways, then logouts."""
    c1, c2 = client(d1), client(d2)
    j1, j2 = c1.jid, c2.jid
    try:
        for i in range(rounds):
            c1.message(j2, "round %d from %s" % (i, d1))
            step("message %s -> %s (%d)" % (d1, d2, i), c2.wait_for(is_message_from(j1), 10) is not None)
            c2.message(j1, "round %d from %s" % (i, d2))
            step("message %s -> %s (%d)" % (d2, d1, i), c1.wait_for(is_message_from(j2), 10) is not None)
            c1.presence(j2, show="away")
            step("directed presence %s -> %s (%d)" % (j1, j2, i),
                 c2.wait_for(lambda el: el.tag == "{%s}presence" % NS_CLIENT
                             and bare(el.get("from") or "") == j1 and el.get("type") is None, 10)
                 is not None)
            ping(c1, d2)
            ping(c2, d1)
    finally:
        c1.close()
        c2.close()


class Args:
    def __init__(self, scenario, duration=2.0, domain="evil.lab", claim=None):
        self.ip = IPS[domain]
        self.domain = domain
        self.secret = PEER_SECRETS[domain]
        self.peer = ["%s=%s" % (d, IPS[d]) for d in ("a.lab", "b.lab", "c.lab", "e.lab")]
        self.scenario = scenario
        self.duration = duration
        self.claim = claim


def run_peer(scenario, target="a.lab", duration=2.0, domain="evil.lab", key="peer"):
    log = badpeer.Log()
    p = badpeer.Peer(Args(scenario, duration, domain), log)
    try:
        p.run(target, duration)
    finally:
        obs[key + "_notes"] = p.notes
        obs[key + "_events"] = log.events
    return p


def run_server_side(scenario, sender="a.lab"):
    """The real server of `sender` connects to evil.lab because its user writes to mallory@evil.lab."""
    holder = {}

    def bg():
        holder["peer"] = run_peer(scenario, duration=12.0)
    t = threading.Thread(target=bg, daemon=True)
    t.start()
    time.sleep(0.5)   # listener up
    c = client(sender)
    try:
        c.message("mallory@evil.lab", "hello evil")
        c.drain(2.5)
    finally:
        c.close()
    t.join(timeout=25)
    step("peer finished", not t.is_alive())
    return holder.get("peer")


# ------------------------------------------------------------- scenarios --

def sc_rotated():
    """One session in three phases, each ROTATE_SECONDS + 1.5 s after the previous
    one, so that tcpdump -G starts a new file with the first packet of each
    phase: (1) setup with dialback and the first stanzas, (2) more stanzas on the
    open connections; (3) the shutdown follows (run-lab.sh stops the servers)."""
    gap = ROTATE_SECONDS + 1.5
    t0 = time.monotonic()
    federate("a.lab", "b.lab", full=False)
    step("phase 1 within %.0f s" % (ROTATE_SECONDS - 1.5), time.monotonic() - t0 < ROTATE_SECONDS - 1.5,
         "%.2f s" % (time.monotonic() - t0))
    time.sleep(max(0.0, t0 + gap - time.monotonic()))
    t1 = time.monotonic()
    # clients log in before the phase (c2s traffic is not captured; their
    # initial presence goes nowhere: no subscriptions in this scenario)
    c1, c2 = client("a.lab"), client("b.lab")
    time.sleep(max(0.0, t1 + 1.0 - time.monotonic()))
    t2 = time.monotonic()
    try:
        c1.message(c2.jid, "phase 2 from a.lab")
        step("message a.lab -> b.lab (phase 2)", c2.wait_for(is_message_from(c1.jid), 5) is not None)
        c2.message(c1.jid, "phase 2 from b.lab")
        step("message b.lab -> a.lab (phase 2)", c1.wait_for(is_message_from(c2.jid), 5) is not None)
        ping(c1, "b.lab")
        ping(c2, "a.lab")
        step("phase 2 within %.0f s" % (ROTATE_SECONDS - 1.5), time.monotonic() - t2 < ROTATE_SECONDS - 1.5,
             "%.2f s" % (time.monotonic() - t2))
    finally:
        # leave the c2s sessions open: logging out would send presence on s2s
        # outside the phase; the servers' shutdown ends them
        obs["phase_starts"] = [0.0, round(t2 - t0, 3)]
    time.sleep(max(0.0, t2 + gap - time.monotonic()))
    obs["phase_starts"].append(round(time.monotonic() - t0, 3))
    # the c2s sockets are left to the shutdown (closing them here would send
    # unavailable presence over s2s into file 3 before the shutdown)
    obs["_keep"] = [c1, c2]


def sc_mixed_case():
    """ejabberd forwards JIDs as its client typed them; Prosody normalises."""
    a = client("a.lab")
    e = client("e.lab", jid="EVE@E.Lab")
    try:
        step("ejabberd bound the client as it typed its JID", e.full_jid.startswith("EVE@E.Lab/"),
             e.full_jid)
        e.message("Alice@A.Lab", "mixed-case bare JID")
        step("message EVE@E.Lab -> Alice@A.Lab", a.wait_for(is_message_from_ci("eve@e.lab"), 10) is not None)
        e.message("ALICE@a.LAB/Home", "mixed-case full JID, unknown resource")
        step("message -> ALICE@a.LAB/Home", a.wait_for(is_message_from_ci("eve@e.lab"), 10) is not None)
        e.subscribe("Alice@A.Lab")
        step("presence subscribe -> Alice@A.Lab", a.wait_for(is_presence("eve@e.lab", "subscribe"), 10)
             is not None)
        a.subscribed("Eve@E.Lab")
        step("presence subscribed -> Eve@E.Lab", e.wait_for(is_presence("alice@a.lab", "subscribed"), 10)
             is not None)
        ping(e, "A.Lab")
        a.message("Eve@E.Lab", "reply to a mixed-case JID")
        step("message alice@a.lab -> Eve@E.Lab", e.wait_for(is_message_from_ci("alice@a.lab"), 10)
             is not None)
        ping(a, "E.LAB")
    finally:
        a.close()
        e.close()


def sc_multi_server():
    """Four real servers (Prosody a.lab, b.lab, c.lab; ejabberd e.lab) and two
    misbehaving peers: evil.lab spoofs `from` toward a.lab after a valid
    dialback, lazy.lab answers c.lab's dialback `valid` without verifying.
    Dialback runs in every direction between the real servers."""
    domains = ["a.lab", "b.lab", "c.lab", "e.lab"]
    cl = {d: client(d) for d in domains}
    try:
        # round 1: every ordered pair once (one dialback per direction)
        for d1 in domains:
            for d2 in domains:
                if d1 == d2:
                    continue
                cl[d1].message(cl[d2].jid, "hello %s from %s" % (d2, d1))
                step("message %s -> %s" % (d1, d2),
                     cl[d2].wait_for(is_message_from(cl[d1].jid), 10) is not None)
        # subscriptions and pings between some pairs
        for d1, d2 in (("a.lab", "b.lab"), ("c.lab", "e.lab"), ("e.lab", "b.lab")):
            cl[d1].subscribe(cl[d2].jid)
            step("presence subscribe %s -> %s" % (d1, d2),
                 cl[d2].wait_for(is_presence(cl[d1].jid, "subscribe"), 10) is not None)
            cl[d2].subscribed(cl[d1].jid)
            step("presence subscribed %s -> %s" % (d2, d1),
                 cl[d1].wait_for(is_presence(cl[d2].jid, "subscribed"), 10) is not None)
        for d1 in domains:
            for d2 in domains:
                if d1 != d2:
                    ping(cl[d1], d2)
        # evil.lab: valid dialback toward a.lab, then a message "from" b.lab
        run_peer("bad-spoofed-from", target="a.lab", duration=3.0, domain="evil.lab", key="evil")
        step("evil.lab validated before spoofing", obs["evil_notes"].get("dialback") == "valid",
             str(obs["evil_notes"]))
        # lazy.lab: carol@c.lab writes to mallory@lazy.lab; lazy.lab says valid unverified
        holder = {}

        def bg():
            holder["peer"] = run_peer("bad-valid-unverified", duration=8.0, domain="lazy.lab",
                                      key="lazy")
        t = threading.Thread(target=bg, daemon=True)
        t.start()
        time.sleep(0.5)
        cl["c.lab"].message("mallory@lazy.lab", "hello lazy")
        t.join(timeout=25)
        step("lazy.lab peer finished", not t.is_alive())
        # rounds 2 to 5, spaced out: a few minutes of traffic on the established connections
        for r in (2, 3, 4, 5):
            time.sleep(25)
            for d1 in domains:
                for d2 in domains:
                    if d1 == d2:
                        continue
                    cl[d1].message(cl[d2].jid, "round %d" % r)
                    step("message %s -> %s (round %d)" % (d1, d2, r),
                         cl[d2].wait_for(is_message_from(cl[d1].jid), 10) is not None)
    finally:
        for c in cl.values():
            c.close()


# --------------------------------------------------- non-XMPP on port 5269 --

def tls_client_hello():
    """The bytes of a real TLS ClientHello (Python's ssl, never sent through ssl)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="a.lab")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def hold_probes(out):
    """HTTP request to b.lab:5269, TLS ClientHello to a.lab:5269, from SCAN_IP;
    keep both connections until SIGTERM, reading whatever comes back."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    probes = []
    for name, dst, data in (
            ("http", IPS["b.lab"], b"GET / HTTP/1.1\r\nHost: b.lab:5269\r\nUser-Agent: lab-probe\r\n"
                                   b"Accept: */*\r\n\r\n"),
            ("tls", IPS["a.lab"], tls_client_hello())):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((SCAN_IP, 0))
        s.connect((dst, 5269))
        s.sendall(data)
        probes.append({"name": name, "sock": s, "received": b"", "eof": False})
    open(out + ".ready", "w").close()
    while not stop.is_set():
        for p in probes:
            if p["eof"]:
                continue
            p["sock"].settimeout(0.1)
            try:
                d = p["sock"].recv(65536)
                if d:
                    p["received"] += d
                else:
                    p["eof"] = True
            except socket.timeout:
                pass
            except OSError:
                p["eof"] = True
    for p in probes:
        try:
            p["sock"].shutdown(socket.SHUT_WR)
        except OSError:
            pass
    time.sleep(0.5)
    for p in probes:
        p["sock"].close()
    obs["probes"] = {p["name"]: {"received": p["received"].decode("utf-8", "replace"),
                                 "server_closed_first": p["eof"]} for p in probes}
    # the servers are gone before SIGTERM comes: each must have closed its end
    step("servers closed the probe connections", all(p["eof"] for p in probes))


# ------------------------------------------------------------------ main --

def main_phase(scenario):
    if scenario in ("prosody-prosody", "prosody-prosody-sll", "prosody-prosody-sll2", "bidi",
                    "not-xmpp-probes"):
        federate("a.lab", "b.lab")
    elif scenario == "prosody-ejabberd":
        federate("a.lab", "e.lab")
    elif scenario == "midstream-prosody":
        chatter("a.lab", "b.lab")
    elif scenario == "midstream-ejabberd":
        chatter("a.lab", "e.lab")
    elif scenario == "rotated":
        sc_rotated()
    elif scenario == "mixed-case":
        sc_mixed_case()
    elif scenario == "multi-server":
        sc_multi_server()
    elif scenario == "starttls":
        c1, c2 = client("a.lab"), client("b.lab")
        try:
            c1.message(c2.jid, "hello over TLS-protected s2s")
            step("message a.lab -> b.lab (TLS s2s)",
                 c2.wait_for(is_message_from(c1.jid), 12) is not None)
        finally:
            c1.close()
            c2.close()
    elif scenario in badpeer.SERVER_SIDE:
        run_server_side(scenario)
    elif scenario == "wrong-secret":
        run_peer("wrong-secret", target="b.lab", duration=3.0)
        step("receiving server answered invalid",
             obs["peer_notes"].get("dialback") == "invalid", str(obs["peer_notes"]))
        # the truth file claims DB-RCV-5: the RS leaves the stream open
        step("receiving server left the stream open for 12 s",
             obs["peer_notes"].get("rs_closed_stream") is False, str(obs["peer_notes"]))
    else:
        target = "e.lab" if scenario.endswith("-ejabberd") else "a.lab"
        name = scenario[:-len("-ejabberd")] if scenario.endswith("-ejabberd") else scenario
        run_peer(name, target=target, duration=2.0)
        notes = obs["peer_notes"]
        if scenario in ("bad-no-to", "bad-no-from", "bad-spoofed-from"):
            step("dialback valid before the bad stanza", notes.get("dialback") == "valid", str(notes))
        elif name in ("verify-leg-error", "verify-leg-close"):
            step("the verify leg died", bool(notes.get("verify_leg")), str(notes))
        elif name == "legacy-peer":
            step("dialback valid for the pre-1.0 peer", notes.get("dialback") == "valid", str(notes))
        elif name == "repeated-valid":
            step("first dialback valid", notes.get("dialback") == "valid", str(notes))


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    phase = sys.argv[3] if len(sys.argv) > 3 else "main"
    obs["scenario"] = scenario
    obs["phase"] = phase
    try:
        if phase == "setup":
            if scenario == "midstream-prosody":
                federate("a.lab", "b.lab")
            elif scenario == "midstream-ejabberd":
                federate("a.lab", "e.lab")
            else:
                step("no setup phase for " + scenario, False)
        elif phase == "hold":
            hold_probes(out)
        else:
            main_phase(scenario)
    except (C2SError, badpeer.Closed, badpeer.Timeout, OSError) as e:
        step("exception", False, repr(e))
    obs.pop("_keep", None)
    with open(out, "w") as f:
        json.dump(obs, f, indent=1)
    return 0 if obs["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
