#!/usr/bin/env python3
"""Self-check and ground truth of one case of scripts/lab/tls-servers.sh.

    tls-servers-truth.py CASE VERSION AUTH OUTDIR SCENDIR

CASE is dialback-tls13 | dialback-tls12 | sasl-tls13 | sasl-tls12, AUTH dialback | sasl,
VERSION 1.3 | 1.2. Reads OUTDIR/servers-CASE.{pcap,prosody.keylog,ejabberd.keylog} and the
servers' logs in SCENDIR, and checks, independently of S2Scope:

  * the key-log shim worked in both servers: every TLS session of the capture (client random
    of each ClientHello, read by tshark) has its secrets in Prosody's key log AND in
    ejabberd's (each server is one end of every session), and the files are mode 0600;
  * the negotiated TLS version of every session is VERSION (tshark);
  * tshark decrypts every TLS stream with either key log; the decrypted XML (tshark
    `follow,tls,raw`) shows the authentications the case expects: for `sasl`, SASL EXTERNAL
    succeeding both ways and no dialback; for `dialback`, Server Dialback both ways (valid,
    verified) after Prosody's SASL EXTERNAL attempt failed on ejabberd's side;
  * the servers' own logs say the same (ejabberd "Accepted/Failed inbound s2s EXTERNAL
    authentication", Prosody "SASL EXTERNAL with ... succeeded").

Writes OUTDIR/servers-CASE.truth.json (fields of scripts/lab/scenarios.py plus `sasl`,
`keylogs`, `dsb_capture`, `decrypted_bytes` per connection as tshark decrypts them). Exit
status 1 with the reasons when a check fails (nothing is written then).
"""
import base64
import json
import os
import re
import subprocess
import sys

A, E = "10.53.0.1", "10.53.0.3"
PROSODY = "Prosody 0.12.3 (Debian 12)"
EJABBERD = "ejabberd 23.01 (Debian 12)"
SECRETS = {"a.lab": "a-lab-dialback-secret"}
ATTR = re.compile(r"""([\w:.-]+)\s*=\s*(['"])(.*?)\2""", re.S)


def attrs(tag):
    return {k: v for k, _, v in ATTR.findall(tag)}


def tshark(*args):
    return subprocess.run(["tshark", *args], check=True, capture_output=True, text=True).stdout


def streams(cap):
    """tcp.stream index -> (client ip, client port, server ip, server port) from the SYNs."""
    out = {}
    for line in tshark("-r", cap, "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "fields",
                       "-e", "tcp.stream", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst",
                       "-e", "tcp.dstport").splitlines():
        f = line.split("\t")
        out[int(f[0])] = (f[1], int(f[2]), f[3], int(f[4]))
    return out


def decrypted(cap, keylog, n, server):
    """(initiator's, acceptor's) bytes of TLS stream n as tshark decrypts them (follow,tls,raw).
    tshark prints Node 0's data flush left and Node 1's indented; Node 0 is whichever side sent
    the first decrypted record (the acceptor in TLS 1.3), so it is named by its address."""
    text = tshark("-r", cap, "-o", "tls.keylog_file:" + keylog, "-q", "-z", "follow,tls,raw,%d" % n)
    sides = [b"", b""]
    data = False
    node0_is_server = False
    for line in text.split("\n"):
        if line.startswith("Node 0:"):
            node0_is_server = line.split(":", 1)[1].strip() == "%s:%d" % server
        if line.startswith("Node 1:"):
            data = True
            continue
        if line.startswith("===="):
            data = False
            continue
        if data and line.strip():
            indented = line.startswith("\t")
            sides[1 if indented != node0_is_server else 0] += bytes.fromhex(line.strip())
    return sides


def keylog_randoms(path):
    rs = set()
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) == 3:
                rs.add(p[1].lower())
    return rs


def wire_dialbacks(conns):
    """Untyped db:result requests and their answers in the decrypted streams."""
    verifies = []
    for c in conns:
        for d in ("c2s", "s2c"):
            for m in re.finditer(r"<db:verify\b([^>]*)>", c[d]):
                a = attrs(m.group(1))
                if "type" not in a:
                    verifies.append((a.get("from"), a.get("to"), a.get("id")))
    out = []
    for c in conns:
        ids = [attrs(m.group(1)).get("id") for m in re.finditer(r"<stream:stream\b([^>]*)>", c["s2c"])]
        for m in re.finditer(r"<db:result\b([^>]*)>", c["c2s"]):
            a = attrs(m.group(1))
            if "type" in a:
                continue
            s, t = a.get("from"), a.get("to")
            outcome = "pending"
            for r in re.finditer(r"<db:result\b([^>]*)>", c["s2c"]):
                ra = attrs(r.group(1))
                if ra.get("type") and ra.get("from") == t and ra.get("to") == s:
                    outcome = ra["type"]
                    break
            seen = any((t, s, i) in verifies for i in ids)
            out.append({"originating": s, "receiving": t, "outcome": outcome, "verify_seen": seen})
    return out


def wire_sasl(conns):
    """SASL exchanges: <auth/> from the initiator and the acceptor's <success/> or <failure/>."""
    out = []
    for c in conns:
        headers = [attrs(m.group(1)) for m in re.finditer(r"<stream:stream\b([^>]*)>", c["c2s"])]
        for m in re.finditer(r"<auth\b([^>]*?)(?:/>|>(.*?)</auth>)", c["c2s"], re.S):
            a = attrs(m.group(1))
            data = (m.group(2) or "").strip()
            authzid = base64.b64decode(data).decode() if data and data != "=" else None
            reply = re.search(r"<(success|failure)\b[^>]*?(?:/>|>(.*?)</failure>)", c["s2c"], re.S)
            outcome, condition = (reply.group(1), None) if reply else ("pending", None)
            if reply and outcome == "failure":
                cm = re.search(r"<([a-z-]+)\b", reply.group(2) or "")
                condition = cm.group(1) if cm else None
            out.append({"initiating": headers[-1].get("from") if headers else None,
                        "receiving": headers[-1].get("to") if headers else None,
                        "mechanism": a.get("mechanism"), "authzid": authzid, "outcome": outcome,
                        "condition": condition, "from_ip": c["client"]})
    return out


def main():
    case, version, auth, outdir, scendir = sys.argv[1:6]
    stem = os.path.join(outdir, "servers-" + case)
    cap = stem + ".pcap"
    keylogs = {"Prosody": stem + ".prosody.keylog", "ejabberd": stem + ".ejabberd.keylog"}
    errors = []

    # -- the shim in both servers: every session's secrets, from each server ------------------
    randoms = {r.lower() for r in tshark("-r", cap, "-Y", "tls.handshake.type==1", "-T", "fields",
                                         "-e", "tls.handshake.random").split()}
    if not randoms:
        errors.append("no TLS ClientHello in the capture")
    for server, path in keylogs.items():
        missing = randoms - keylog_randoms(path)
        if missing:
            errors.append("%s's key log misses %d of %d sessions" % (server, len(missing), len(randoms)))
    for server, live in (("Prosody", os.path.join(scendir, "keys-a", "keys.log")),
                         ("ejabberd", os.path.join(scendir, "keys-e", "keys.log"))):
        mode = os.stat(live).st_mode & 0o777
        if mode != 0o600:
            errors.append("%s's key log was created with mode %o, not 600" % (server, mode))

    # -- TLS version ------------------------------------------------------------------------
    want = {"1.3": "0x0304", "1.2": "0x0303"}[version]
    got = set()
    for line in tshark("-r", cap, "-Y", "tls.handshake.type==2", "-T", "fields",
                       "-e", "tls.handshake.extensions.supported_version", "-e", "tls.handshake.version").splitlines():
        f = line.split("\t")
        got.add(f[0] or f[1])
    if got != {want}:
        errors.append("negotiated TLS versions %s, expected %s" % (sorted(got), want))

    # -- decrypted content ------------------------------------------------------------------
    conns = []
    decrypted_bytes = {}
    for n, (cip, cport, sip, sport) in sorted(streams(cap).items()):
        sides = decrypted(cap, keylogs["Prosody"], n, (sip, sport))
        other = decrypted(cap, keylogs["ejabberd"], n, (sip, sport))
        if sides != other:
            errors.append("stream %d decrypts differently with the two key logs" % n)
        if not sides[0] or not sides[1]:
            errors.append("tshark decrypted nothing in one direction of stream %d" % n)
        conns.append({"client": cip, "server": sip, "c2s": sides[0].decode("utf-8", "replace"),
                      "s2c": sides[1].decode("utf-8", "replace")})
        decrypted_bytes["%s:%d>%s:%d" % (cip, cport, sip, sport)] = [len(sides[0]), len(sides[1])]
    dialbacks = wire_dialbacks(conns)
    sasl = wire_sasl(conns)

    def logtext(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""
    plog = logtext(os.path.join(scendir, "a", "prosody.log"))
    elog = logtext(os.path.join(scendir, "e", "log", "ejabberd.log"))
    evidence = []

    def log_says(text, needle, who):
        m = re.search(needle, text)
        if m:
            end = text.find("\n", m.end())
            evidence.append("%s: %s" % (who, text[m.start():end if end >= 0 else len(text)].strip()[:200]))
        else:
            errors.append("%s's log does not say /%s/" % (who, needle))

    if auth == "sasl":
        want_sasl = [("a.lab", "e.lab", "success"), ("e.lab", "a.lab", "success")]
        want_db = []
        log_says(elog, r"Accepted inbound s2s EXTERNAL authentication a\.lab -> e\.lab", "ejabberd")
        log_says(plog, r"SASL EXTERNAL with e\.lab succeeded", "Prosody")
        log_says(plog, r"Received\[s2sin_unauthed\]: <auth [^\n]*EXTERNAL", "Prosody")
        log_says(plog, r"Sending\[s2sin_unauthed\]: <success", "Prosody")
        n_conns = 2
    else:
        want_sasl = [("a.lab", "e.lab", "failure")]
        want_db = [("a.lab", "e.lab", "valid", True), ("e.lab", "a.lab", "valid", True)]
        log_says(elog, r"Failed inbound s2s EXTERNAL authentication a\.lab -> e\.lab", "ejabberd")
        log_says(elog, r"Failed outbound s2s EXTERNAL authentication e\.lab -> a\.lab", "ejabberd")
        n_conns = 3
    got_sasl = sorted((s["initiating"], s["receiving"], s["outcome"]) for s in sasl)
    if got_sasl != sorted(want_sasl):
        errors.append("SASL on the wire %s, expected %s" % (got_sasl, sorted(want_sasl)))
    for s in sasl:
        if s["mechanism"] != "EXTERNAL" or s["authzid"] != s["initiating"]:
            errors.append("unexpected SASL exchange %s" % s)
    got_db = sorted((d["originating"], d["receiving"], d["outcome"], d["verify_seen"]) for d in dialbacks)
    if got_db != sorted(want_db):
        errors.append("dialbacks on the wire %s, expected %s" % (got_db, sorted(want_db)))
    if len(conns) != n_conns:
        errors.append("%d TCP connections, expected %d" % (len(conns), n_conns))

    if errors:
        for e in errors:
            print("%s: %s" % (case, e))
        return 1

    v = "TLS " + version
    how = ("certificates from a lab CA both servers trust: SASL EXTERNAL both ways (XEP-0178), no dialback"
           if auth == "sasl" else
           "self-signed certificates: Prosody's SASL EXTERNAL attempt fails (ejabberd: <not-authorized/>), "
           "Prosody offers no EXTERNAL to ejabberd, and both authenticate with Server Dialback inside TLS")
    truth = {
        "scenario": "servers-" + case,
        "description": ("Real Prosody 0.12.3 (a.lab) and ejabberd 23.01 (e.lab) federate with STARTTLS required "
                        "(%s), both running under the key-log shim tools/keylog-shim; %s. Messages, a presence "
                        "subscription and pings both ways; both servers are stopped at the end." % (v, how)),
        "capture": "servers-%s.pcap" % case,
        "dsb_capture": "servers-%s-dsb.pcapng" % case,
        "keylogs": ["servers-%s.prosody.keylog" % case, "servers-%s.ejabberd.keylog" % case],
        "link_type": "EN10MB",
        "tls_version": v,
        "servers": {"a.lab": A, "e.lab": E},
        "software": {A: PROSODY, E: EJABBERD},
        "dialback_secrets": SECRETS,
        "dialbacks": [{"originating": o, "receiving": r, "outcome": out, "verify_seen": vs} for o, r, out, vs in want_db],
        "dialbacks_complete": True,
        "sasl": [{"initiating": s["initiating"], "receiving": s["receiving"], "mechanism": s["mechanism"],
                  "authzid": s["authzid"], "outcome": s["outcome"], "condition": s["condition"]} for s in sasl],
        "expect_violations": [],
        "allow_violations": [],
        "forbid_violations_at_or_above": "medium",
        "expect_tls_connections": n_conns,
        "tls_sessions": len(randoms),
        "decrypted_bytes": decrypted_bytes,
        "server_log_evidence": evidence,
        "notes": ("Outcomes come from the decrypted wire (tshark with either key log) and the servers' logs, "
                  "not from S2Scope. decrypted_bytes: application data per connection (initiator, acceptor) "
                  "as tshark decrypts it. Each key log alone covers every session."),
    }
    with open(stem + ".truth.json", "w") as f:
        json.dump(truth, f, indent=2)
        f.write("\n")
    print("%s: ok (%d connections, %d TLS sessions, %s)" % (case, len(conns), len(randoms), got_sasl + got_db))
    return 0


if __name__ == "__main__":
    sys.exit(main())
