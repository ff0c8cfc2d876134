#!/usr/bin/env python3
"""Ground truth for the lab scenarios, and the self-check of each capture.

    scenarios.py finish SCENARIO CAPTURE_DIR OBSERVATIONS.json OUTDIR
    scenarios.py list

`finish` (called by run-lab.sh after every scenario):
  1. checks that the fresh capture really contains what the truth claims: the
     expected TCP connections from the expected addresses, the dialbacks with
     their outcomes, and the real server's reaction;
  2. copies the capture(s) to OUTDIR and writes OUTDIR/<capture>.truth.json,
     with `server_reaction` taken verbatim from the capture.
It exits 1 (and writes nothing for this scenario) when the capture does not
match, so that a changed server version is noticed instead of silently
producing wrong fixtures.

The expected rule IDs come from reading /work/shared/spec/RULES.md against
what each scenario puts on the wire; they are NOT taken from any analyzer.
Truth file fields (consumed by check-truth.py):
  scenario, description, capture, link_type, servers {domain: ip},
  software {ip: "server and version"}, dialback_secrets {domain: secret},
  dialbacks [{originating, receiving, outcome (string or list of accepted
             strings), verify_seen}], dialbacks_complete (bool),
  expect_violations [{rule, actor, from_ip, severity?, note}],
  allow_violations [{rule, note}]   (a correct analyzer may also report these),
  forbid_violations_at_or_above ("medium" for clean scenarios, else null),
  expect_tls_connections (int, optional),
  server_reaction (verbatim XML from the capture), notes.
"""
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil  # noqa: E402

A, B, E, EVIL = "10.53.0.1", "10.53.0.2", "10.53.0.3", "10.53.0.9"
PROSODY = "Prosody 0.12.3 (Debian 12)"
EJABBERD = "ejabberd 23.01 (Debian 12)"
BADPEER = "scripts/lab/badpeer.py (misbehaving peer)"
SECRETS = {"a.lab": "a-lab-dialback-secret", "b.lab": "b-lab-dialback-secret",
           "evil.lab": "evil-lab-dialback-secret"}

# shorthand constructors ------------------------------------------------------


def db(o, r, outcome, verify):
    return {"originating": o, "receiving": r, "outcome": outcome, "verify_seen": verify}


def v(rule, actor, ip, note, severity=None):
    d = {"rule": rule, "actor": actor, "from_ip": ip, "note": note}
    if severity:
        d["severity"] = severity
    return d


def allow(rule, note):
    return {"rule": rule, "note": note}


EVIL_A_VALID = [db("evil.lab", "a.lab", "valid", True), db("a.lab", "evil.lab", "valid", True)]
EVIL_A_NOTE = ("Prosody verifies evil.lab's key over its own new connection to evil.lab "
               "(after sending its own db:result on it); badpeer verifies Prosody's key on a "
               "verify-only connection that it closes after the answer.")

# reaction: (sender ip, peer ip or None, regex) searched in what `sender` sent
STREAM_ERROR = r"<stream:error>.*?</stream:error>"

SCENARIOS = {
    "prosody-prosody": {
        "description": "Two Prosody servers federate in both directions over plaintext s2s with "
                       "dialback: messages, a presence subscription and XEP-0199 pings; both "
                       "servers are stopped at the end (system-shutdown stream errors).",
        "servers": {"a.lab": A, "b.lab": B},
        "software": {A: PROSODY, B: PROSODY},
        "dialbacks": [db("a.lab", "b.lab", "valid", True), db("b.lab", "a.lab", "valid", True)],
        "expect": [], "allow": [], "forbid": "medium",
        "connections": [(A, B), (B, A)],
        "reaction": (B, A, r"<db:result[^>]*type='valid'[^>]*>[^<]*</db:result>"),
        "notes": "Each db:verify rides on the reverse connection (Prosody re-uses its outgoing "
                 "stream toward the sender domain). Prosody quirks present, none a violation: "
                 "id='' on initial headers, an id attribute and the key text on typed db:result "
                 "replies, bare <dialback/> feature without <errors/>.",
    },
    "prosody-ejabberd": {
        "description": "Prosody (a.lab) and ejabberd (e.lab) federate in both directions over "
                       "plaintext s2s with dialback; ejabberd verifies on a separate verify-only "
                       "connection that it closes after the answer.",
        "servers": {"a.lab": A, "e.lab": E},
        "software": {A: PROSODY, E: EJABBERD},
        "dialbacks": [db("a.lab", "e.lab", "valid", True), db("e.lab", "a.lab", "valid", True)],
        "expect": [], "allow": [], "forbid": "medium",
        "connections": [(A, E), (E, A), (E, A)],
        "reaction": (E, A, r"<db:result[^>]*type='valid'[^>]*/>"),
        "notes": "ejabberd advertises <dialback><errors/></dialback> and empty SASL mechanisms, "
                 "sends typed replies without key text; Prosody sends its db:verify for "
                 "ejabberd's key on its own a.lab->e.lab connection.",
    },
    "wrong-secret": {
        "description": "badpeer (10.53.0.9) claims to be a.lab toward b.lab and presents a key "
                       "made with a wrong secret; b.lab (RS) asks a.lab's real server (AS), which "
                       "answers type='invalid', and b.lab answers the db:result type='invalid'. "
                       "The peer then waits 12 s before closing: Prosody never closes the stream "
                       "itself after the invalid result.",
        "servers": {"a.lab": A, "b.lab": B},
        "software": {A: PROSODY, B: PROSODY, EVIL: BADPEER + " claiming a.lab"},
        "dialbacks": [db("a.lab", "b.lab", "invalid", True), db("b.lab", "a.lab", "valid", True),
                      db("a.lab", "b.lab", "valid", True)],
        "expect": [v("DB-RCV-5", "receiving", B,
                     "after <db:result type='invalid'/> on a connection with no validated pair "
                     "b.lab keeps the stream open for 12 s (> T_react) and only sends "
                     "</stream:stream> after the peer closed first")],
        "allow": [], "forbid": None,
        "connections": [(EVIL, B), (B, A), (A, B)],
        "reaction": (B, EVIL, r"<db:result[^>]*type='invalid'[^>]*>[^<]*</db:result>"),
        "notes": "The invalid key is a correct XEP-0185 key for (b.lab, a.lab, stream id) under "
                 "the secret 'not-the-secret-of-a.lab'. With dialback_secrets a.lab's 'invalid' "
                 "can be confirmed (DB-AUTH-3). b.lab has to authenticate its own connection to "
                 "a.lab first, so the capture also holds two valid dialbacks between the real "
                 "servers.",
    },
    "verify-unhosted": {
        "description": "badpeer, acting as a receiving server, opens a stream to a.lab and sends "
                       "<db:verify to='other.lab'> (a domain a.lab does not host) with an id for "
                       "which no db:result exists anywhere in the capture.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [],
        "expect": [v("DB-AUTH-1", "authoritative", A,
                     "verify `to` not hosted: Prosody answers with <unsupported-stanza-type/>, "
                     "neither <host-unknown/> nor an item-not-found dialback error"),
                   v("DB-CORR-1", "receiving", EVIL,
                     "db:verify for a pair/id for which the RS never received a db:result")],
        "allow": [], "forbid": None,
        "connections": [(EVIL, A)],
        "reaction": (A, EVIL, STREAM_ERROR),
    },
    "starttls": {
        "description": "Two Prosody servers with self-signed certificates and "
                       "s2s_require_encryption=true, s2s_secure_auth=false: each connection "
                       "offers <starttls><required/></starttls>, negotiates TLS, and dialback "
                       "runs inside TLS (invisible). One message a.lab -> b.lab.",
        "servers": {"a.lab": A, "b.lab": B},
        "software": {A: PROSODY, B: PROSODY},
        "dialbacks": [],
        "expect": [], "allow": [], "forbid": "medium",
        "tls_connections": 2,
        "connections": [(A, B), (B, A)],
        "reaction": (B, A, r"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
        "notes": "Rules on the encrypted part are 'unknown', never pass/fail. The dialback keys "
                 "are bound to post-TLS stream ids, which are encrypted.",
    },
    "bad-stream-ns": {
        "description": "badpeer opens an s2s stream with default namespace jabber:client on 5269. "
                       "Prosody does not object: it answers with a jabber:server header, "
                       "features, and later accepts dialback on that stream.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": EVIL_A_VALID,
        "expect": [v("STREAM-HDR-3", "initiator", EVIL,
                     "initial header xmlns='jabber:client' on an s2s stream"),
                   v("STREAM-HDR-3", "acceptor", A,
                     "no <invalid-namespace/>: Prosody answers with a header whose default "
                     "namespace (jabber:server) differs from the initial one and continues")],
        "allow": [allow("STREAM-HDR-2", "some analyzers may file the missing reaction here")],
        "forbid": None,
        "connections": [(EVIL, A), (A, EVIL), (EVIL, A)],
        "reaction": (A, EVIL, r"<\?xml[^>]*\?><stream:stream[^>]*>"),
        "notes": EVIL_A_NOTE,
    },
    "bad-db-ns": {
        "description": "badpeer binds the db prefix to the wrong URI 'jabber:server:dialbak' on its "
                       "header and sends <db:result> in that namespace.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [], "dialbacks_complete": False,
        "expect": [v("DB-NS-1", "initiator", EVIL,
                     "dialback prefix bound to another URI than jabber:server:dialback"),
                   v("DB-NS-2", "acceptor", A,
                     "Prosody closes with <unsupported-stanza-type/> instead of "
                     "<invalid-namespace/> (RULES.md: another condition -> INFO)", "info")],
        "allow": [], "forbid": None,
        "connections": [(EVIL, A)],
        "reaction": (A, EVIL, STREAM_ERROR),
        "notes": "The element is not a dialback element (wrong namespace), so no dialback is "
                 "listed; an analyzer that records the attempt anyway is not wrong.",
    },
    "bad-unhosted-result": {
        "description": "badpeer sends <db:result from='evil.lab' to='other.lab'> to a.lab, which "
                       "does not host other.lab.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [db("evil.lab", "other.lab", ["error", "pending"], False)],
        "expect": [v("DB-RCV-2", "receiving", A,
                     "db:result to a domain the RS does not host answered with "
                     "<unsupported-stanza-type/>, neither <host-unknown/> nor an "
                     "item-not-found dialback error")],
        "allow": [], "forbid": None,
        "connections": [(EVIL, A)],
        "reaction": (A, EVIL, STREAM_ERROR),
    },
    "bad-no-to": {
        "description": "After a valid dialback evil.lab -> a.lab, badpeer sends a <message/> "
                       "without `to`.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": EVIL_A_VALID,
        "expect": [v("STANZA-ADDR-1", "originating", EVIL, "stanza without `to`"),
                   v("STANZA-ADDR-3", "receiving", A,
                     "Prosody closes with <host-unknown/> instead of <improper-addressing/> "
                     "(LOW)", "low")],
        "allow": [], "forbid": None,
        "connections": [(EVIL, A), (A, EVIL), (EVIL, A)],
        "reaction": (A, EVIL, STREAM_ERROR),
        "notes": EVIL_A_NOTE,
    },
    "bad-no-from": {
        "description": "After a valid dialback evil.lab -> a.lab, badpeer sends a <message/> "
                       "without `from`.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": EVIL_A_VALID,
        "expect": [v("STANZA-ADDR-2", "originating", EVIL, "stanza without `from`"),
                   v("STANZA-ADDR-3", "receiving", A,
                     "Prosody closes with <not-authorized/> instead of <improper-addressing/> "
                     "(LOW)", "low")],
        "allow": [allow("STANZA-ADDR-4", "a missing from-domain is also not a validated domain")],
        "forbid": None,
        "connections": [(EVIL, A), (A, EVIL), (EVIL, A)],
        "reaction": (A, EVIL, STREAM_ERROR),
        "notes": EVIL_A_NOTE,
    },
    "bad-spoofed-from": {
        "description": "After a valid dialback evil.lab -> a.lab, badpeer sends a message "
                       "from='bob@b.lab/lab' (b.lab was never validated on the stream).",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": EVIL_A_VALID,
        "expect": [v("STANZA-ADDR-4", "originating", EVIL,
                     "from-domain b.lab is not validated on this stream"),
                   v("STANZA-ADDR-5", "receiving", A,
                     "Prosody closes with <not-authorized/> instead of <invalid-from/> (LOW)",
                     "low")],
        "allow": [], "forbid": None,
        "connections": [(EVIL, A), (A, EVIL), (EVIL, A)],
        "reaction": (A, EVIL, STREAM_ERROR),
        "notes": EVIL_A_NOTE,
    },
    "bad-xml-comment": {
        "description": "badpeer sends an XML comment right after the stream header.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [],
        "expect": [v("XML-1", "initiator", EVIL, "<!-- ... --> in the stream")],
        "allow": [allow("XML-2", "Prosody closes with <not-well-formed/>, not the RFC 6120 "
                                 "<restricted-xml/>; it does close, so RULES.md's evidence for "
                                 "XML-2 is not met, but a profile-aware analyzer may note it")],
        "forbid": None,
        "connections": [(EVIL, A)],
        "reaction": (A, EVIL, STREAM_ERROR),
    },
    "bad-xml-pi": {
        "description": "badpeer sends a processing instruction right after the stream header.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [],
        "expect": [v("XML-1", "initiator", EVIL, "<?lab-pi ...?> (not the XML declaration)")],
        "allow": [allow("XML-2", "Prosody closes with <not-well-formed/>, not <restricted-xml/>")],
        "forbid": None,
        "connections": [(EVIL, A)],
        "reaction": (A, EVIL, STREAM_ERROR),
    },
    "bad-early-stanza": {
        "description": "badpeer sends a <message/> immediately behind its db:result (same "
                       "TCP segment), before a.lab answered type='valid'. Prosody drops it "
                       "silently and later answers valid.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": EVIL_A_VALID,
        "expect": [v("DB-RES-3", "originating", EVIL,
                     "stanza for (evil.lab, a.lab) before the pair was validated")],
        "allow": [], "forbid": None,
        "connections": [(EVIL, A), (A, EVIL), (EVIL, A)],
        "reaction": (A, EVIL, r"<db:result[^>]*type='valid'[^>]*>[^<]*</db:result>"),
        # on the wire: the stanza must precede the receiving server's answer
        "order": [(EVIL, A, rb"<message "),
                  (A, EVIL, rb"<db:result(?=[^>]*from='a.lab')(?=[^>]*to='evil.lab')"
                            rb"[^>]*type='valid'")],   # Prosody's attribute order varies
        "notes": EVIL_A_NOTE + " Dropping the early stanza silently is allowed (DB-RCV-7).",
    },
    "bad-verify-unknown-id": {
        "description": "badpeer, acting as a receiving server, asks a.lab (authoritative) to "
                       "verify a key for a stream id that nobody issued.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [],
        "expect": [v("DB-CORR-1", "receiving", EVIL,
                     "db:verify for a pair/stream id for which the RS never received a db:result")],
        "allow": [], "forbid": None,
        "connections": [(EVIL, A)],
        "reaction": (A, EVIL, r"<db:verify[^>]*type='invalid'[^>]*>[^<]*</db:verify>"),
        "notes": "Prosody's answer type='invalid' is correct (DB-AUTH-3).",
    },
    "bad-no-id": {
        "description": "alice@a.lab writes to mallory@evil.lab; Prosody connects to evil.lab, "
                       "whose response header carries no `id`.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [],
        "expect": [v("STREAM-HDR-8", "acceptor", EVIL, "response header without `id`", "high")],
        "allow": [], "forbid": None,
        "connections": [(A, EVIL)],
        "reaction": (A, EVIL, STREAM_ERROR),
        "notes": "Prosody, as initiator, closes with <undefined-condition/> 'Missing stream ID' "
                 "and never sends a db:result.",
    },
    "bad-valid-unverified": {
        "description": "alice@a.lab writes to mallory@evil.lab; badpeer (receiving server) "
                       "answers Prosody's db:result type='valid' at once, without any db:verify "
                       "toward a.lab. Prosody then sends the message.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [db("a.lab", "evil.lab", "valid", False)],
        "expect": [v("DB-CORR-9", "receiving", EVIL,
                     "type='valid' on a plaintext stream with no verification anywhere in the "
                     "capture and no connection toward a.lab")],
        "allow": [], "forbid": None,
        "connections": [(A, EVIL)],
        "reaction": (A, EVIL, r"<message[^>]*>.*?</message>"),
    },
    "bad-verify-wrong-id": {
        "description": "badpeer (originating) sends a db:result to a.lab; when a.lab dials back "
                       "to evil.lab (authoritative), badpeer answers the db:verify with another "
                       "`id` than the request's. Prosody ignores the mismatched answer and never "
                       "answers the db:result; badpeer closes after 8 s.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [db("evil.lab", "a.lab", "pending", True), db("a.lab", "evil.lab", "valid", True)],
        "expect": [v("DB-CORR-2", "authoritative", EVIL,
                     "typed db:verify reply does not copy the request's id")],
        "allow": [allow("DB-CORR-3", "P3920 wants <invalid-id/> for the mismatch; Prosody ignores "
                                     "it silently (correct under XEP-0220) -> LOW at most"),
                  allow("DB-CORR-8", "the request never got a reply with its id")],
        "forbid": None,
        "connections": [(EVIL, A), (A, EVIL), (EVIL, A)],
        "reaction": (EVIL, A, r"<db:verify[^>]*type='valid'[^>]*/>"),
        "notes": "server_reaction here is the faulty reply itself; Prosody's reaction is silence "
                 "on the originating connection until the peer closes it.",
    },
}

VARIANTS = {   # scenario -> list of (capture file name, link type)
    "prosody-prosody": [("prosody-prosody.pcap", "EN10MB"), ("prosody-prosody.pcapng", "EN10MB"),
                        ("prosody-prosody-sll.pcap", "LINUX_SLL"),
                        ("prosody-prosody-sll2.pcap", "LINUX_SLL2")],
}

# ---------------------------------------------------------------- wire check --
ATTR = re.compile(r"""([\w:.-]+)\s*=\s*(['"])(.*?)\2""", re.S)


def attrs(tag):
    return {k: v for k, _, v in ATTR.findall(tag)}


def text(b):
    return b.decode("utf-8", "replace")


def wire_dialbacks(conns):
    """Dialbacks as they appear on the wire (untyped db:result requests + their answers)."""
    verifies = []   # (from, to, id) of untyped db:verify requests
    for c in conns:
        for d in ("c2s", "s2c"):
            for m in re.finditer(r"<db:verify\b([^>]*)>", text(c[d])):
                a = attrs(m.group(1))
                if "type" not in a:
                    verifies.append((a.get("from"), a.get("to"), a.get("id")))
    out = []
    for c in conns:
        up, down = text(c["c2s"]), text(c["s2c"])
        hm = re.search(r"<stream:stream\b([^>]*)>", down)
        sid = attrs(hm.group(1)).get("id") if hm else None
        for m in re.finditer(r"<db:result\b([^>]*)>", up):
            a = attrs(m.group(1))
            if "type" in a:
                continue
            s, t = a.get("from"), a.get("to")
            outcome = "pending"
            for r in re.finditer(r"<db:result\b([^>]*)>", down):
                ra = attrs(r.group(1))
                if ra.get("type") and ra.get("from") == t and ra.get("to") == s:
                    outcome = ra["type"]
                    break
            else:
                if "<stream:error>" in down:
                    outcome = "error"
            out.append({"originating": s, "receiving": t, "outcome": outcome,
                        "verify_seen": (t, s, sid) in verifies, "from_ip": c["client"]})
    return out


def outcome_ok(expected, got):
    return got in expected if isinstance(expected, list) else got == expected


def check(sc, spec, capfile):
    errors = []
    conns = pcaputil.connections(capfile)
    pairs = sorted((c["client"], c["server"]) for c in conns)
    if pairs != sorted(spec["connections"]):
        errors.append("connections %s, expected %s" % (pairs, sorted(spec["connections"])))
    known = set(spec["servers"].values()) | set(spec.get("software", {}))
    for c in conns:
        for ip in (c["client"], c["server"]):
            if ip not in known:
                errors.append("unexpected address %s" % ip)
    if "tls_connections" in spec:
        n = sum(1 for c in conns if "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" in text(c["s2c"]))
        if n != spec["tls_connections"]:
            errors.append("%d connections switched to TLS, expected %d" % (n, spec["tls_connections"]))
    wire = wire_dialbacks(conns)
    remaining = list(wire)
    for want in spec["dialbacks"]:
        for i, got in enumerate(remaining):
            if (got["originating"], got["receiving"]) == (want["originating"], want["receiving"]) \
                    and outcome_ok(want["outcome"], got["outcome"]) \
                    and got["verify_seen"] == want["verify_seen"]:
                del remaining[i]
                break
        else:
            errors.append("dialback %s not on the wire (wire: %s)" % (want, wire))
    if remaining and spec.get("dialbacks_complete", True):
        errors.append("unexpected dialbacks on the wire: %s" % remaining)
    sender, peer, rx = spec["reaction"]
    reaction = None
    for c in conns:
        if c["client"] == sender and (peer is None or c["server"] == peer):
            m = re.search(rx, text(c["c2s"]), re.S)
        elif c["server"] == sender and (peer is None or c["client"] == peer):
            m = re.search(rx, text(c["s2c"]), re.S)
        else:
            m = None
        if m:
            reaction = m.group(0)
            break
    if reaction is None:
        errors.append("reaction /%s/ from %s not found" % (rx, sender))
    if "order" in spec:
        errors += check_order(spec["order"], capfile)
    return errors, reaction, conns


def check_order(order, capfile):
    """Each (src ip, dst ip, bytes regex) must first match in a frame before the next one's."""
    frames = []
    for src, dst, needle in order:
        n = next((s["n"] for s in pcaputil.tcp_segments(capfile)
                  if s["src"] == src and s["dst"] == dst and re.search(needle, s["payload"])), None)
        if n is None:
            return ["%r from %s to %s not on the wire" % (needle, src, dst)]
        frames.append((n, needle))
    errs = []
    for (n1, a), (n2, b) in zip(frames, frames[1:]):
        if not n1 < n2:
            errs.append("%r (frame %d) does not precede %r (frame %d) on the wire"
                        % (a, n1, b, n2))
    return errs


def truth_doc(sc, spec, capname, linktype, reaction, obs):
    doc = {
        "scenario": sc,
        "description": spec["description"],
        "capture": capname,
        "link_type": linktype,
        "servers": spec["servers"],
        "software": spec.get("software", {}),
        "dialback_secrets": {d: SECRETS[d] for d in SECRETS
                             if d in spec["servers"] or d == "evil.lab" and EVIL in spec.get("software", {})},
        "dialbacks": spec["dialbacks"],
        "dialbacks_complete": spec.get("dialbacks_complete", True),
        "expect_violations": spec["expect"],
        "allow_violations": spec["allow"],
        "forbid_violations_at_or_above": spec["forbid"],
        "server_reaction": reaction,
    }
    if "tls_connections" in spec:
        doc["expect_tls_connections"] = spec["tls_connections"]
    if spec.get("notes"):
        doc["notes"] = spec["notes"]
    return doc


def finish(sc, capdir, obsfile, outdir):
    spec = SCENARIOS[sc]
    obs = {}
    if os.path.exists(obsfile):
        with open(obsfile) as f:
            obs = json.load(f)
    variants = VARIANTS.get(sc, [(sc + ".pcap", "EN10MB")])
    failed = False
    results = []
    ref = None
    for capname, lt in variants:
        path = os.path.join(capdir, capname)
        if not os.path.exists(path) or os.path.getsize(path) < 100:
            print("%s: capture %s missing or empty" % (sc, capname))
            failed = True
            continue
        errors, reaction, conns = check(sc, spec, path)
        fmt, pkts = pcaputil.read_packets(path)
        lts = {pcaputil.LINKTYPE_NAMES.get(p[0], str(p[0])) for p in pkts}
        if lts != {lt}:
            errors.append("link type %s, expected %s" % (lts, lt))
        streams = [(c["client"], c["server"], c["c2s"], c["s2c"]) for c in conns]
        if ref is None:
            ref = streams
        elif streams != ref:
            errors.append("byte streams differ from %s" % variants[0][0])
        for e in errors:
            print("%s: %s: %s" % (sc, capname, e))
        failed = failed or bool(errors)
        results.append((capname, lt, reaction))
    if failed:
        return 1
    for capname, lt, reaction in results:
        dst = os.path.join(outdir, capname)
        shutil.copyfile(os.path.join(capdir, capname), dst)
        os.chmod(dst, 0o644)
        stem = capname[:-len(".pcap")] if capname.endswith(".pcap") else None
        if stem is None:
            continue     # the .pcapng shares <stem>.truth.json with the .pcap of the same run
        doc = truth_doc(sc, spec, capname, lt, reaction, obs)
        if sc in VARIANTS:
            doc["same_run_as"] = [c for c, _ in variants if c != capname]
        with open(os.path.join(outdir, stem + ".truth.json"), "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    print("%s: ok (%s)" % (sc, ", ".join(c for c, _, _ in results)))
    return 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "list":
        for sc in SCENARIOS:
            print(sc)
        return 0
    if len(sys.argv) == 6 and sys.argv[1] == "finish":
        return finish(*sys.argv[2:6])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
