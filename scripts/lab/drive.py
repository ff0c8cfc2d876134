#!/usr/bin/env python3
"""Traffic driver for one lab scenario (runs inside the lab network namespace).

    drive.py SCENARIO OBSERVATIONS.json

Real-server scenarios use c2s.py clients to make the servers federate;
misbehaving-peer scenarios run badpeer.Peer in-process.  Writes what was
observed (delivery results, the peer's notes and its full I/O log) to
OBSERVATIONS.json.  Exit status 0 when the traffic went as planned, 1 otherwise
(the capture is still kept; run-lab.sh reports the failure).
"""
import json
import os
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import badpeer  # noqa: E402
from c2s import Client, C2SError, is_message_from, NS_CLIENT  # noqa: E402

IPS = {"a.lab": "10.53.0.1", "b.lab": "10.53.0.2", "e.lab": "10.53.0.3", "evil.lab": "10.53.0.9"}
USERS = {"a.lab": ("alice", "pw-alice"), "b.lab": ("bob", "pw-bob"), "e.lab": ("eve", "pw-eve")}
EVIL_SECRET = "evil-lab-dialback-secret"

obs = {"ok": True, "steps": []}


def step(name, ok, detail=""):
    obs["steps"].append({"step": name, "ok": bool(ok), "detail": detail})
    if not ok:
        obs["ok"] = False
    print("[drive] %-40s %s %s" % (name, "ok" if ok else "FAILED", detail), file=sys.stderr, flush=True)


def client(domain):
    user, pw = USERS[domain]
    return Client(IPS[domain], "%s@%s" % (user, domain), pw,
                  log=lambda m: print("  " + m[:200], file=sys.stderr)).connect()


def is_presence(frm, ptype):
    def pred(el):
        return (el.tag == "{%s}presence" % NS_CLIENT and el.get("type") == ptype
                and (el.get("from") or "").split("/")[0] == frm)
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
            r = c1.ping(d2, timeout=10)
            step("ping %s -> %s" % (j1, d2), r.get("type") == "result", ET.tostring(r).decode())
            r = c2.ping(d1, timeout=10)
            step("ping %s -> %s" % (j2, d1), r.get("type") == "result", ET.tostring(r).decode())
    finally:
        c1.close()
        c2.close()


class Args:
    def __init__(self, scenario, duration=2.0):
        self.ip = IPS["evil.lab"]
        self.domain = "evil.lab"
        self.secret = EVIL_SECRET
        self.peer = ["a.lab=10.53.0.1", "b.lab=10.53.0.2"]
        self.scenario = scenario
        self.duration = duration


def run_peer(scenario, target="a.lab", duration=2.0):
    log = badpeer.Log()
    p = badpeer.Peer(Args(scenario, duration), log)
    try:
        p.run(target, duration)
    finally:
        obs["peer_notes"] = p.notes
        obs["peer_events"] = log.events
    return p


def run_server_side(scenario):
    """Prosody (a.lab) connects to evil.lab because alice writes to mallory@evil.lab."""
    holder = {}

    def bg():
        holder["peer"] = run_peer(scenario, duration=12.0)
    t = threading.Thread(target=bg, daemon=True)
    t.start()
    time.sleep(0.5)   # listener up
    c = client("a.lab")
    try:
        c.message("mallory@evil.lab", "hello evil")
        c.drain(2.5)
    finally:
        c.close()
    t.join(timeout=25)
    step("peer finished", not t.is_alive())
    return holder.get("peer")


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    obs["scenario"] = scenario
    try:
        if scenario in ("prosody-prosody", "prosody-prosody-sll", "prosody-prosody-sll2"):
            federate("a.lab", "b.lab")
        elif scenario == "prosody-ejabberd":
            federate("a.lab", "e.lab")
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
            run_peer(scenario, target="a.lab", duration=2.0)
            if scenario in ("bad-no-to", "bad-no-from", "bad-spoofed-from"):
                step("dialback valid before the bad stanza",
                     obs["peer_notes"].get("dialback") == "valid", str(obs["peer_notes"]))
    except (C2SError, badpeer.Closed, badpeer.Timeout, OSError) as e:
        step("exception", False, repr(e))
    with open(out, "w") as f:
        json.dump(obs, f, indent=1)
    return 0 if obs["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
