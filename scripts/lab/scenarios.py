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
  server_reaction (verbatim XML from the capture), notes,
  expect_violations[].count (exact number of reports on from_ip's connections),
  expect_midstream_connections (int), captures (a set analysed together; its
  files have their own truths with part_of), non_xmpp_connections,
  expect_servers (per-server rows, issue #18), mixed_case_jids, bidi_connections.
Spec keys only used for the self-check: connections, reaction, order,
  midstream (connections without SYN), contains / lacks (regexes on all
  bytes), lacks_from [(sender, peer, regex)], last_fin_from, files (rotated).
"""
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil  # noqa: E402

A, B, E, EVIL = "10.53.0.1", "10.53.0.2", "10.53.0.3", "10.53.0.9"
C, LAZY, SCAN = "10.53.0.4", "10.53.0.10", "10.53.0.20"
PROSODY = "Prosody 0.12.3 (Debian 12)"
EJABBERD = "ejabberd 23.01 (Debian 12)"
BADPEER = "scripts/lab/badpeer.py (misbehaving peer)"
SECRETS = {"a.lab": "a-lab-dialback-secret", "b.lab": "b-lab-dialback-secret",
           "c.lab": "c-lab-dialback-secret", "evil.lab": "evil-lab-dialback-secret",
           "lazy.lab": "lazy-lab-dialback-secret"}

# shorthand constructors ------------------------------------------------------


def db(o, r, outcome, verify):
    return {"originating": o, "receiving": r, "outcome": outcome, "verify_seen": verify}


def v(rule, actor, ip, note, severity=None, count=None):
    d = {"rule": rule, "actor": actor, "from_ip": ip, "note": note}
    if severity:
        d["severity"] = severity
    if count is not None:
        d["count"] = count
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

# ------------------------------------------------------- issue #15 and #18 --
# Real-server behaviours seen in field captures (CAPTURE-FACTS) and the attack
# and failure cases of RULES.md that a real server can be made to show.

PROSODY_QUIRKS_NOTE = (
    "Prosody 0.12 quirks on the wire, reported at INFO/LOW by RULES.md and nothing more: "
    "id='' on initial headers (STREAM-HDR-8 INFO), an id attribute and the key text on typed "
    "db:result answers (DB-SYN-1 INFO), the bare <dialback/> feature without <errors/> "
    "(DB-ADV-1 INFO), plaintext features without <starttls/> in this lab's configuration "
    "(STREAM-FEAT-2 LOW).")


def prosody_quirks(acceptors, initiators, typed_answerers):
    """The INFO/LOW findings RULES.md gives for Prosody's usual wire format."""
    out = []
    for ip in initiators:
        out.append(v("STREAM-HDR-8", "initiator", ip, "initial header with id='' (INFO)", "info"))
    for ip in acceptors:
        out.append(v("DB-ADV-1", "acceptor", ip, "<dialback/> feature without <errors/> (INFO)",
                     "info"))
        out.append(v("STREAM-FEAT-2", "acceptor", ip,
                     "features answering version='1.0' without <starttls/> (LOW)", "low"))
    for ip in typed_answerers:
        out.append(v("DB-SYN-1", "receiving", ip, "extra id attribute on a typed db:result (INFO)",
                     "info"))
    return out


MIDSTREAM_NOTE = ("The capture starts after federation is up: no SYN, no stream header, no "
                  "features and no dialback on any connection, only stanzas (presence, "
                  "probes and their answers, messages, directed presence, XEP-0199 pings and "
                  "their results). It stops before the servers are stopped, so every "
                  "connection outlives it. The acceptor of each connection sends nothing in "
                  "the capture (classic s2s: stanzas only flow from the initiator). Every "
                  "stanza carries `to` and `from` of the pair validated before the capture "
                  "started; nothing here can be judged against dialback state, and nothing "
                  "may be reported for the missing stream start.")

ROTATED_NOTE = ("One Prosody a.lab <-> b.lab session recorded with `tcpdump -G %d` "
                "(run-lab.sh ROTATE_SECONDS), which opens a new file with the first packet "
                "after the interval: rotated-1 holds the connection setup with dialback and "
                "the first messages, rotated-2 (starts mid-connection) more messages and "
                "pings, rotated-3 (starts mid-connection) the shutdown: b.lab stops first and "
                "sends <system-shutdown/> on both connections.")

MULTI_DIALBACKS = (
    [db(o, r, "valid", True) for o, r in (
        ("a.lab", "b.lab"), ("b.lab", "a.lab"), ("a.lab", "c.lab"), ("c.lab", "a.lab"),
        ("a.lab", "e.lab"), ("e.lab", "a.lab"), ("b.lab", "c.lab"), ("c.lab", "b.lab"),
        ("b.lab", "e.lab"), ("e.lab", "b.lab"), ("c.lab", "e.lab"), ("e.lab", "c.lab"),
        ("evil.lab", "a.lab"), ("a.lab", "evil.lab"))]
    + [db("c.lab", "lazy.lab", "valid", False)])


def server(domains, addresses, software, roles, orig, recv, findings, note=""):
    """One row of expect_servers (issue #18)."""
    d = {"domains": domains, "addresses": addresses, "software": software, "roles": roles,
         "dialbacks_as_originating": orig, "dialbacks_as_receiving": recv,
         "findings": findings}
    if note:
        d["note"] = note
    return d


def finding(rule, severity, count=None, note=""):
    f = {"rule": rule, "severity": severity}
    if count is not None:
        f["count"] = count
    if note:
        f["note"] = note
    return f


SCENARIOS.update({
    "midstream-prosody": {
        "description": "Prosody a.lab and b.lab federate (dialback both ways, messages, a "
                       "presence subscription, pings) before the capture starts; the capture "
                       "then holds two rounds of logins, messages, directed presence and pings "
                       "both ways plus the logouts, and stops while both connections are open.",
        "servers": {"a.lab": A, "b.lab": B},
        "software": {A: PROSODY, B: PROSODY},
        "dialbacks": [], "expect": [], "allow": [], "forbid": "medium",
        "midstream": 2,
        "connections": [(A, B), (B, A)],
        "reaction": (B, A, r"<iq[^>]*type='result'[^>]*/>"),
        "notes": MIDSTREAM_NOTE,
    },
    "midstream-ejabberd": {
        "description": "Prosody a.lab and ejabberd e.lab federate before the capture starts "
                       "(ejabberd's verify-only connection is already closed); the capture "
                       "holds two rounds of stanzas both ways on the two open connections.",
        "servers": {"a.lab": A, "e.lab": E},
        "software": {A: PROSODY, E: EJABBERD},
        "dialbacks": [], "expect": [], "allow": [], "forbid": "medium",
        "midstream": 2,
        "connections": [(A, E), (E, A)],
        "reaction": (E, A, r"<iq[^>]*type='result'[^>]*/>"),
        "notes": MIDSTREAM_NOTE,
    },
    "rotated": {
        "description": "One continuous Prosody a.lab <-> b.lab session (setup with dialback, "
                       "stanzas, shutdown) recorded with tcpdump -G: three files.",
        "servers": {"a.lab": A, "b.lab": B},
        "software": {A: PROSODY, B: PROSODY},
        "dialbacks": [db("a.lab", "b.lab", "valid", True), db("b.lab", "a.lab", "valid", True)],
        "expect": prosody_quirks([A, B], [A, B], [A, B]),
        "allow": [], "forbid": "medium", "midstream": 0,
        "connections": [(A, B), (B, A)],
        "reaction": (B, A, r"<stream:error><system-shutdown.*?</stream:error>"),
        "notes": ROTATED_NOTE + " Analysed together, in order, the three files are one "
                                "session: the later files continue the connections of "
                                "rotated-1, so no connection is picked up mid-stream. "
                 + PROSODY_QUIRKS_NOTE,
        # per file: (capture, spec overrides); each file alone is judged on its own
        "files": [
            ("rotated-1.pcap", {
                "description": "File 1 of 3 of a tcpdump -G rotation: the connection setup "
                               "(headers, features, dialback both ways) and the first messages; "
                               "both connections are still open when the file ends.",
                "dialbacks": [db("a.lab", "b.lab", "valid", True),
                              db("b.lab", "a.lab", "valid", True)],
                "expect": prosody_quirks([A, B], [A, B], [A, B]),
                "midstream": 0,
                "reaction": (B, A, r"<db:result[^>]*type='valid'[^>]*>[^<]*</db:result>"),
                "contains": [r"<db:result", r"<message "], "lacks": [r"phase 2", r"<stream:error"],
            }),
            ("rotated-2.pcap", {
                "description": "File 2 of 3 of a tcpdump -G rotation: it starts mid-connection "
                               "and holds only stanzas (messages, pings and their results) on "
                               "the two open connections.",
                "dialbacks": [], "expect": [], "midstream": 2,
                "reaction": (B, A, r"<iq[^>]*type='result'[^>]*/>"),
                "contains": [r"phase 2", r"urn:xmpp:ping"],
                "lacks": [r"<stream:stream", r"<db:", r"<stream:error"],
            }),
            ("rotated-3.pcap", {
                "description": "File 3 of 3 of a tcpdump -G rotation: it starts mid-connection "
                               "and holds only the shutdown: b.lab's <system-shutdown/> stream "
                               "errors, the closing tags and the FINs.",
                "dialbacks": [], "expect": [], "midstream": 2,
                "reaction": (B, A, r"<stream:error><system-shutdown.*?</stream:error>"),
                "contains": [r"<system-shutdown"],
                "lacks": [r"<stream:stream", r"<db:", r"<message"],
            }),
        ],
    },
    "mixed-case": {
        "description": "eve logs in to ejabberd as EVE@E.Lab and writes to Alice@A.Lab and "
                       "ALICE@a.LAB/Home, subscribes to Alice@A.Lab and pings A.Lab: ejabberd "
                       "forwards the JIDs as typed (to='Alice@A.Lab', from='EVE@E.Lab/lab'). "
                       "alice answers to Eve@E.Lab and pings E.LAB: Prosody sends them "
                       "lower-cased.",
        "servers": {"a.lab": A, "e.lab": E},
        "software": {A: PROSODY, E: EJABBERD},
        "dialbacks": [db("e.lab", "a.lab", "valid", True), db("a.lab", "e.lab", "valid", True)],
        "expect": [], "allow": [], "forbid": "medium",
        "connections": [(E, A), (A, E), (E, A)],
        "reaction": (E, A, r"<message[^>]*to='Alice@A\.Lab'[^>]*>"),
        "contains": [r"to='Alice@A\.Lab'", r"to='ALICE@a\.LAB/Home'", r"from='EVE@E\.Lab/lab'",
                     r"to='A\.Lab'"],
        "extra": {"mixed_case_jids": ["to='Alice@A.Lab'", "to='ALICE@a.LAB/Home'",
                                      "from='EVE@E.Lab/lab'", "from='EVE@E.Lab'", "to='A.Lab'"]},
        "notes": "RFC 7622 3.2: domainparts compare case-insensitively (and localparts after "
                 "case folding by the server), so E.Lab is the validated domain e.lab and A.Lab "
                 "is the target a.lab: no STANZA-ADDR-4/-6. ejabberd 23.01 keeps the client's "
                 "spelling of its own bound JID (EVE@E.Lab/lab) and of every `to`; Prosody "
                 "0.12.3 normalises before sending (to='eve@e.lab/lab', from='a.lab' on the "
                 "ping result for A.Lab). ejabberd verifies a.lab's key on a verify-only "
                 "connection, Prosody verifies e.lab's key on its own a.lab->e.lab connection.",
    },
    "bidi": {
        "description": "Prosody a.lab and b.lab with mod_s2s_bidi (XEP-0288) and plaintext "
                       "dialback: both offer <bidi xmlns='urn:xmpp:features:bidi'/> and both, as "
                       "initiators, send <bidi xmlns='urn:xmpp:bidi'/>. Messages, a presence "
                       "subscription and pings both ways.",
        "servers": {"a.lab": A, "b.lab": B},
        "software": {A: PROSODY + " with mod_s2s_bidi", B: PROSODY + " with mod_s2s_bidi"},
        "dialbacks": [db("a.lab", "b.lab", "valid", True), db("b.lab", "a.lab", "valid", True)],
        "expect": [], "allow": [], "forbid": "medium",
        "connections": [(A, B), (B, A)],
        "reaction": (B, A, r"<stream:features>.*?</stream:features>"),
        "contains": [r"<bidi xmlns='urn:xmpp:bidi'/>", r"<bidi xmlns='urn:xmpp:features:bidi'/>"],
        "extra": {"bidi_connections": 2},
        "notes": "Prosody 0.12.3 cannot produce one bidirectional connection between two "
                 "dialback servers: b.lab verifies a.lab's key over a new b.lab->a.lab "
                 "connection, and mod_s2s only routes over an inbound bidi stream when no "
                 "outgoing one exists at authentication time (it already does). So there are "
                 "two connections, both negotiate bidi, dialback runs as usual (each db:verify "
                 "on the other connection's initial stream), and every stanza travels on an "
                 "initial stream. Legitimate: no BIDI-2/BIDI-3, no TCP-1, no DB-SYN-2. The "
                 "single-connection case is fixtures/transcripts/bidi-single-connection.txt.",
    },
    "verify-leg-error": {
        "description": "badpeer (evil.lab) sends a db:result to Prosody a.lab. Prosody opens "
                       "a.lab->evil.lab, authenticates it (badpeer verifies a.lab's key and "
                       "answers valid), and sends the db:verify; badpeer, the authoritative "
                       "server, answers it with a <host-unknown/> stream error and closes. "
                       "Prosody tells the originating connection nothing; badpeer waits 14 s "
                       "and closes.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [db("evil.lab", "a.lab", "pending", True),
                      db("a.lab", "evil.lab", "valid", True)],
        "expect": [v("DB-RCV-9", "receiving", A,
                     "the verify leg ended with a stream error while the verify was pending; on "
                     "the originating connection Prosody sends neither <remote-connection-"
                     "failed/> nor a dialback error with <remote-server-not-found/> for 14 s "
                     "(MEDIUM, once: one verify leg, one pending request)", "medium", count=1)],
        "allow": [], "forbid": "medium",
        "connections": [(EVIL, A), (A, EVIL), (EVIL, A)],
        "reaction": (EVIL, A, r"<stream:error><host-unknown.*?</stream:error>"),
        "notes": "server_reaction is the verify leg's stream error (badpeer as authoritative "
                 "server); Prosody's reaction on the originating connection is silence until "
                 "the peer closes, then its own </stream:stream>.",
    },
    "verify-leg-close": {
        "description": "As verify-leg-error, but badpeer (authoritative server) answers the "
                       "db:verify by closing its stream (</stream:stream> and FIN) with the "
                       "verify pending. Prosody tells the originating connection nothing.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [db("evil.lab", "a.lab", "pending", True),
                      db("a.lab", "evil.lab", "valid", True)],
        "expect": [v("DB-RCV-9", "receiving", A,
                     "the authoritative server closed the verify leg with the verify pending "
                     "(RULES.md: SHOULD be treated as a failure); Prosody sends neither failure "
                     "form on the originating connection (MEDIUM, once)", "medium", count=1)],
        "allow": [], "forbid": "medium",
        "connections": [(EVIL, A), (A, EVIL), (EVIL, A)],
        "reaction": (A, EVIL, r"<db:verify[^>]*>[^<]*</db:verify></stream:stream>"),
        "notes": "server_reaction shows Prosody's db:verify that the closing tag left pending.",
    },
    "verify-leg-error-ejabberd": {
        "description": "badpeer (evil.lab) sends a db:result to ejabberd e.lab; ejabberd's "
                       "verify-only connection to evil.lab is answered with a <host-unknown/> "
                       "stream error. ejabberd answers the originating connection with "
                       "<db:result type='error'> carrying <remote-server-not-found/> and keeps "
                       "the stream open until the peer closes.",
        "servers": {"e.lab": E, "evil.lab": EVIL},
        "software": {E: EJABBERD, EVIL: BADPEER},
        "dialbacks": [db("evil.lab", "e.lab", "error", True)],
        "expect": [], "allow": [], "forbid": "medium",
        "connections": [(EVIL, E), (E, EVIL)],
        "reaction": (E, EVIL, r"<db:result[^>]*type='error'.*?</db:result>"),
        "notes": "This is what DB-RCV-9 asks (XEP-0220 2.5: <remote-server-not-found/> when "
                 "the verify step fails): no violation by ejabberd.",
    },
    "unsolicited-verify": {
        "description": "xmpp.org security notice 2012-08-21: badpeer claims b.lab toward a.lab "
                       "(Prosody). Behind a db:result with a key made from a wrong secret it "
                       "sends, on its own initial stream, <db:verify type='valid' from='b.lab' "
                       "to='a.lab' id='(a.lab's stream id)'/> as if it were b.lab's "
                       "authoritative server. Prosody ignores it, asks the real b.lab, which "
                       "says invalid, and answers type='invalid'; it keeps the stream open "
                       "until badpeer closes 12 s later.",
        "servers": {"a.lab": A, "b.lab": B},
        "software": {A: PROSODY, B: PROSODY, EVIL: BADPEER + " claiming b.lab"},
        "dialbacks": [db("b.lab", "a.lab", "invalid", True), db("a.lab", "b.lab", "valid", True),
                      db("b.lab", "a.lab", "valid", True)],
        "expect": [v("DB-SYN-2", "initiator", EVIL,
                     "typed db:verify on the initial stream without bidi: the unsolicited "
                     "dialback probe (HIGH, once)", "high", count=1),
                   v("DB-RCV-5", "receiving", A,
                     "after type='invalid' on a connection with nothing validated Prosody keeps "
                     "the stream open 12 s and closes only after the peer (MEDIUM, once)", "medium",
                     count=1)],
        "allow": [], "forbid": "medium",
        "connections": [(EVIL, A), (A, B), (B, A)],
        "reaction": (A, EVIL, r"<db:result[^>]*type='invalid'[^>]*>[^<]*</db:result>"),
        "notes": "No DB-CORR-3: the receiving server never acts on the unsolicited verify "
                 "(Prosody logs 'Ignoring incoming session ... claiming a dialback key ... is "
                 "valid') and answers from the real authoritative server's verdict. The typed "
                 "verify carries a.lab's own stream id, so it matches the pending request in "
                 "from/to/id: only the direction (initial stream) shows it is forged.",
    },
    "unsolicited-result": {
        "description": "The other form of the 2012 notice: badpeer claims b.lab toward a.lab "
                       "(Prosody) and sends only <db:result type='valid' from='b.lab' "
                       "to='a.lab'/> on its initial stream. Prosody 0.12.3 takes the typed "
                       "element for a request with an empty key and sends b.lab an empty "
                       "<db:verify/>; b.lab's Prosody fails on it (Lua error: no key) and never "
                       "answers; a.lab never answers badpeer, which closes after 24 s.",
        "servers": {"a.lab": A, "b.lab": B},
        "software": {A: PROSODY, B: PROSODY, EVIL: BADPEER + " claiming b.lab"},
        "dialbacks": [db("a.lab", "b.lab", "valid", True), db("b.lab", "a.lab", "valid", True)],
        "dialbacks_complete": False,
        "expect": [v("DB-SYN-2", "initiator", EVIL,
                     "typed db:result on the initial stream without bidi (HIGH, once)", "high",
                     count=1)],
        "allow": [allow("DB-CORR-1", "a.lab sends a db:verify for (a.lab, b.lab) whose only "
                                     "'request' was the typed, key-less db:result: an analyzer "
                                     "may call it a verify without a matching request"),
                  allow("DB-CORR-8", "b.lab never answers the empty db:verify; the connection "
                                     "stays open about 25 s (until shutdown), shorter than the "
                                     "default T_db, so only a shorter T_db reports it")],
        "forbid": "medium",
        "connections": [(EVIL, A), (A, B), (B, A)],
        "reaction": (A, B, r"<db:verify[^>]*/>"),
        "notes": "server_reaction is a.lab's key-less db:verify to b.lab, sent because of the "
                 "typed db:result. Nothing is validated for the forged pair: no `valid`, no "
                 "stanza accepted, so no DB-CORR-3/-4/-9. An analyzer may list the typed "
                 "db:result as a pending exchange (dialbacks_complete=false).",
    },
    "unsolicited-verify-ejabberd": {
        "description": "As unsolicited-verify against ejabberd e.lab, claiming a.lab: ejabberd "
                       "answers the unsolicited typed db:verify at once with a <not-authorized/> "
                       "stream error and closes; its verify-only connection to the real a.lab "
                       "(already under way for the db:result) gets type='invalid'.",
        "servers": {"a.lab": A, "e.lab": E},
        "software": {A: PROSODY, E: EJABBERD, EVIL: BADPEER + " claiming a.lab"},
        "dialbacks": [db("a.lab", "e.lab", ["error", "pending"], True)],
        "expect": [v("DB-SYN-2", "initiator", EVIL,
                     "typed db:verify on the initial stream without bidi (HIGH, once)", "high",
                     count=1)],
        "allow": [], "forbid": "medium",
        "connections": [(EVIL, E), (E, A)],
        "reaction": (E, EVIL, STREAM_ERROR),
        "notes": "ejabberd closes the originating connection before the authoritative "
                 "server's answer arrives; the verdict then has no connection to go to, which is "
                 "not a DB-CORR-7 case.",
    },
    "unsolicited-result-ejabberd": {
        "description": "badpeer claims a.lab toward ejabberd e.lab and sends only <db:result "
                       "type='valid' from='a.lab' to='e.lab'/> on its initial stream; ejabberd "
                       "answers at once with a <not-authorized/> stream error and closes.",
        "servers": {"e.lab": E},
        "software": {E: EJABBERD, EVIL: BADPEER + " claiming a.lab"},
        "dialbacks": [], "dialbacks_complete": False,
        "expect": [v("DB-SYN-2", "initiator", EVIL,
                     "typed db:result on the initial stream without bidi (HIGH, once)", "high",
                     count=1)],
        "allow": [], "forbid": "medium",
        "connections": [(EVIL, E)],
        "reaction": (E, EVIL, STREAM_ERROR),
    },
    "bad-unswapped-result": {
        "description": "alice@a.lab writes to mallory@evil.lab. badpeer (receiving server) "
                       "verifies a.lab's key correctly on a verify-only connection, then "
                       "answers <db:result type='valid' from='a.lab' to='evil.lab'/>, the "
                       "request's from/to not swapped. Prosody closes with "
                       "<unsupported-stanza-type/>.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [db("a.lab", "evil.lab", ["pending", "error"], True)],
        "expect": [v("DB-RCV-6", "receiving", EVIL,
                     "db:result answer not swapped: from='a.lab' to='evil.lab' answers a "
                     "request from='a.lab' to='evil.lab' (HIGH, once)", "high", count=1)],
        "allow": [], "forbid": "medium",
        "connections": [(A, EVIL), (EVIL, A)],
        "reaction": (A, EVIL, STREAM_ERROR),
        "notes": "Prosody does not take the unswapped answer for a verdict: no stanza follows.",
    },
    "legacy-peer": {
        "description": "badpeer plays a pre-XMPP-1.0 server: its headers carry no `version` and "
                       "it sends no stream features. Prosody answers evil.lab's version-less "
                       "header with a version-less header and no features, validates evil.lab "
                       "and accepts a message; as initiator Prosody sends version='1.0' and "
                       "runs dialback over evil.lab's version-less, feature-less answer.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER + " as a pre-1.0 server"},
        "dialbacks": EVIL_A_VALID,
        "expect": [v("STREAM-VER-1", "initiator", EVIL,
                     "initial headers without `version` (legacy, INFO)", "info")],
        "allow": [], "forbid": "medium",
        "connections": [(EVIL, A), (A, EVIL), (EVIL, A)],
        "reaction": (A, EVIL, r"<\?xml[^>]*\?><stream:stream[^>]*>"),
        "lacks_from": [(A, EVIL, r"<stream:features")],
        "notes": EVIL_A_NOTE + " No STREAM-FEAT-1 and no STREAM-VER-2: the acceptor must not "
                               "send features to, and answers without version to, a "
                               "version-less peer.",
    },
    "legacy-peer-ejabberd": {
        "description": "badpeer as a pre-1.0 server (no `version`, no features) toward ejabberd "
                       "e.lab: ejabberd answers without version and without features, verifies "
                       "on a verify-only connection (its own header says version='1.0', "
                       "badpeer's answer does not) and answers valid.",
        "servers": {"e.lab": E, "evil.lab": EVIL},
        "software": {E: EJABBERD, EVIL: BADPEER + " as a pre-1.0 server"},
        "dialbacks": [db("evil.lab", "e.lab", "valid", True)],
        "expect": [v("STREAM-VER-1", "initiator", EVIL,
                     "initial header without `version` (legacy, INFO)", "info")],
        "allow": [], "forbid": "medium",
        "connections": [(EVIL, E), (E, EVIL)],
        "reaction": (E, EVIL, r"<\?xml[^>]*\?><stream:stream[^>]*>"),
        "lacks_from": [(E, EVIL, r"<stream:features")],
    },
    "repeated-valid": {
        "description": "badpeer (evil.lab) is validated by Prosody a.lab, sends a message, then "
                       "the same db:result again on the same stream. Prosody verifies again "
                       "(a second db:verify on its a.lab->evil.lab connection) and sends a "
                       "second <db:result type='valid'/> for the pair already validated; the "
                       "second message is accepted too.",
        "servers": {"a.lab": A, "evil.lab": EVIL},
        "software": {A: PROSODY, EVIL: BADPEER},
        "dialbacks": [db("evil.lab", "a.lab", "valid", True), db("evil.lab", "a.lab", "valid", True),
                      db("a.lab", "evil.lab", "valid", True)],
        "expect": [], "allow": [], "forbid": "medium",
        "connections": [(EVIL, A), (A, EVIL), (EVIL, A)],
        "reaction": (A, EVIL, r"(?:<db:result[^>]*type='valid'[^>]*>[^<]*</db:result>.*?){2}"),
        "notes": "Each `valid` answers a request sent on that stream: no DB-CORR-4 (that rule "
                 "is about an originating server acting on an answer it never asked for). "
                 + EVIL_A_NOTE,
    },
    "repeated-valid-ejabberd": {
        "description": "As repeated-valid against ejabberd e.lab: ejabberd verifies the repeated "
                       "db:result on a second verify-only connection and answers valid again.",
        "servers": {"e.lab": E, "evil.lab": EVIL},
        "software": {E: EJABBERD, EVIL: BADPEER},
        "dialbacks": [db("evil.lab", "e.lab", "valid", True), db("evil.lab", "e.lab", "valid", True)],
        "expect": [], "allow": [], "forbid": "medium",
        "connections": [(EVIL, E), (E, EVIL), (E, EVIL)],
        "reaction": (E, EVIL, r"(?:<db:result[^>]*type='valid'[^>]*/>.*?){2}"),
    },
    "not-xmpp-probes": {
        "description": "A scanner address (10.53.0.20, no domain) sends an HTTP request to "
                       "b.lab:5269 and a TLS ClientHello (direct TLS) to a.lab:5269 and keeps "
                       "both connections open; then a.lab and b.lab federate as in "
                       "prosody-prosody and are stopped; the scanner closes its connections "
                       "last. Prosody answers each probe with a stream header (from='' id='') "
                       "and <not-well-formed/>, and closes.",
        "servers": {"a.lab": A, "b.lab": B},
        "software": {A: PROSODY, B: PROSODY, SCAN: "scanner (scripts/lab/drive.py, HTTP and TLS "
                                                   "bytes, no XMPP)"},
        "dialbacks": [db("a.lab", "b.lab", "valid", True), db("b.lab", "a.lab", "valid", True)],
        "expect": [], "allow": [], "forbid": "medium",
        "connections": [(SCAN, B), (SCAN, A), (A, B), (B, A)],
        "reaction": (B, SCAN, STREAM_ERROR),
        "last_fin_from": SCAN,
        "extra": {"non_xmpp_connections": [
            {"client": SCAN, "server": B, "what": "HTTP/1.1 GET request"},
            {"client": SCAN, "server": A, "what": "TLS ClientHello (direct TLS on 5269)"}]},
        "notes": "The initiators of the probe connections send no XML; Prosody's answer is the "
                 "required reaction to ill-formed input (XML-4) with the header RFC 6120 "
                 "4.9.1.3 asks for before a setup error (from may be empty when the initiator "
                 "named no host: STREAM-ERR-6). Its id='' is not a STREAM-HDR-8 HIGH: no stream "
                 "was opened that a dialback key could be bound to. The dialback exchanges of "
                 "the real servers must be listed although the probes outlive them.",
    },
    "multi-server": {
        "description": "Four real servers (Prosody a.lab, b.lab, c.lab; ejabberd e.lab) "
                       "federate in every direction: round 1 has one message per ordered pair "
                       "(12 dialbacks), subscriptions a->b, c->e, e->b, pings between all "
                       "servers; then evil.lab (badpeer) is validated by a.lab and sends a "
                       "message from='bob@b.lab/lab' (a.lab closes with <not-authorized/>), and "
                       "lazy.lab (badpeer) answers c.lab's db:result `valid` without any "
                       "verification; then rounds of messages between all real servers every "
                       "25 s until the servers are stopped.",
        "servers": {"a.lab": A, "b.lab": B, "c.lab": C, "e.lab": E, "evil.lab": EVIL,
                    "lazy.lab": LAZY},
        "software": {A: PROSODY, B: PROSODY, C: PROSODY, E: EJABBERD, EVIL: BADPEER,
                     LAZY: BADPEER + " (answers valid without verifying)"},
        "dialbacks": MULTI_DIALBACKS,
        "expect": [v("STANZA-ADDR-4", "originating", EVIL,
                     "message from='bob@b.lab/lab' on a stream where only evil.lab is validated "
                     "(CRITICAL, once)", "critical", count=1),
                   v("STANZA-ADDR-5", "receiving", A,
                     "a.lab closes with <not-authorized/> instead of <invalid-from/> (LOW, once)",
                     "low", count=1),
                   v("DB-CORR-9", "receiving", LAZY,
                     "lazy.lab answers type='valid' for (c.lab, lazy.lab) on a plaintext stream "
                     "with no db:verify anywhere and no connection toward c.lab (MEDIUM, once)",
                     "medium", count=1)],
        "allow": [], "forbid": "medium",
        "connections": [(A, B), (B, A), (A, C), (C, A), (A, E), (E, A), (B, C), (C, B), (B, E),
                        (E, B), (C, E), (E, C), (E, A), (E, B), (E, C), (EVIL, A), (A, EVIL),
                        (EVIL, A), (C, LAZY)],
        "reaction": (A, EVIL, STREAM_ERROR),
        "extra": {"expect_servers": [
            server(["a.lab"], [A], PROSODY, ["originating", "receiving", "authoritative"],
                   {"valid": 4}, {"valid": 4},
                   [finding("STANZA-ADDR-5", "low", 1,
                            "closes evil.lab's stream with <not-authorized/> for the spoofed "
                            "from instead of <invalid-from/>")]),
            server(["b.lab"], [B], PROSODY, ["originating", "receiving", "authoritative"],
                   {"valid": 3}, {"valid": 3}, []),
            server(["c.lab"], [C], PROSODY, ["originating", "receiving", "authoritative"],
                   {"valid": 4}, {"valid": 3}, [],
                   "its dialback toward lazy.lab is valid but was never verified: lazy.lab's "
                   "fault (DB-CORR-9), not c.lab's"),
            server(["e.lab"], [E], EJABBERD, ["originating", "receiving", "authoritative"],
                   {"valid": 3}, {"valid": 3}, []),
            server(["evil.lab"], [EVIL], BADPEER, ["originating", "receiving", "authoritative"],
                   {"valid": 1}, {"valid": 1},
                   [finding("STANZA-ADDR-4", "critical", 1,
                            "message from='bob@b.lab/lab' after validating only evil.lab")]),
            server(["lazy.lab"], [LAZY], BADPEER + " (lazy.lab)", ["receiving"],
                   {}, {"valid": 1},
                   [finding("DB-CORR-9", "medium", 1,
                            "type='valid' for c.lab with no verification")]),
        ]},
        "notes": "Per-server truth for issue #18 in expect_servers (domains, addresses, roles, "
                 "dialback counts by role, findings at MEDIUM or above with their counts, plus "
                 "the LOW one a.lab must get). Prosody verifies keys on its reverse connection; "
                 "ejabberd opens one verify-only connection per incoming db:result (e.lab->a, "
                 "e.lab->b, e.lab->c besides its own outgoing connections). Prosody's INFO/LOW "
                 "quirks appear on every Prosody (" + PROSODY_QUIRKS_NOTE + ")",
    },
})

# rotated: the set truth is rotated.truth.json (captures: the three files)
ROTATED_FILES = [f for f, _ in SCENARIOS["rotated"]["files"]]


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
    errors += check_wire_facts(spec, conns, capfile)
    return errors, reaction, conns


def check_wire_facts(spec, conns, capfile):
    """The other claims a truth makes about the capture: connections picked up
    mid-stream, text that must (not) be on the wire, who closes last."""
    errs = []
    if "midstream" in spec:
        no_syn = [c for c in conns if not any(f & 0x02 for _, f in c["flags"])]
        if len(no_syn) != spec["midstream"]:
            errs.append("%d connections without SYN, expected %d" % (len(no_syn), spec["midstream"]))
        for c in no_syn:
            if re.search(r"<stream:stream\b", text(c["c2s"]) + text(c["s2c"])):
                errs.append("connection %s->%s has no SYN but a stream header"
                            % (c["client"], c["server"]))
    everything = "".join(text(c["c2s"]) + text(c["s2c"]) for c in conns)
    for rx in spec.get("contains", []):
        if not re.search(rx, everything):
            errs.append("/%s/ not on the wire" % rx)
    for rx in spec.get("lacks", []):
        if re.search(rx, everything):
            errs.append("/%s/ on the wire, but must not be" % rx)
    for sender, peer, rx in spec.get("lacks_from", []):
        for c in conns:
            sent = text(c["c2s"]) if (c["client"], c["server"]) == (sender, peer) else \
                text(c["s2c"]) if (c["server"], c["client"]) == (sender, peer) else ""
            if re.search(rx, sent):
                errs.append("%s sent /%s/ to %s" % (sender, rx, peer))
    if "last_fin_from" in spec:
        fins = [s for s in pcaputil.tcp_segments(capfile) if s["flags"] & 0x01]
        if not fins or fins[-1]["src"] != spec["last_fin_from"]:
            errs.append("the last FIN is not from %s" % spec["last_fin_from"])
    return errs


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
    }
    if isinstance(capname, list):    # a rotated set analysed together, in this order
        del doc["capture"]
        doc["captures"] = capname
    doc.update({
        "servers": spec["servers"],
        "software": spec.get("software", {}),
        "dialback_secrets": {d: SECRETS[d] for d in SECRETS
                             if d in spec["servers"] or d == "evil.lab" and EVIL in spec.get("software", {})},
        "dialbacks": spec["dialbacks"],
        "dialbacks_complete": spec.get("dialbacks_complete", True),
        "expect_violations": spec["expect"],
        "allow_violations": spec["allow"],
        "forbid_violations_at_or_above": spec["forbid"],
    })
    if "midstream" in spec:
        doc["expect_midstream_connections"] = spec["midstream"]
    doc.update(spec.get("extra", {}))
    doc["server_reaction"] = reaction
    if "tls_connections" in spec:
        doc["expect_tls_connections"] = spec["tls_connections"]
    if spec.get("notes"):
        doc["notes"] = spec["notes"]
    return doc


def write_truth(outdir, name, doc):
    with open(os.path.join(outdir, name + ".truth.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def finish_rotated(sc, spec, capdir, outdir, obs):
    """tcpdump -G wrote <sc>-<epoch>.pcap files: check each alone and the set,
    then copy them as rotated-1.pcap ... with one truth per file and one for the set."""
    def epoch(name):
        return int(re.search(r"-(\d+)\.pcap$", name).group(1))
    files = sorted((f for f in os.listdir(capdir) if re.match(r"rotated-\d+\.pcap$", f)), key=epoch)
    if len(files) != len(spec["files"]):
        print("%s: tcpdump -G wrote %d files (%s), expected %d"
              % (sc, len(files), files, len(spec["files"])))
        return 1
    paths = [os.path.join(capdir, f) for f in files]
    failed = False
    docs = []
    for (capname, over), path in zip(spec["files"], paths):
        fspec = dict(spec)
        fspec.pop("files")
        fspec.update(over)
        errors, reaction, _ = check(sc, fspec, path)
        for e in errors:
            print("%s: %s (%s): %s" % (sc, capname, os.path.basename(path), e))
        failed = failed or bool(errors)
        doc = truth_doc(capname[:-len(".pcap")], fspec, capname, "EN10MB", reaction, obs)
        doc["part_of"] = {"set": sc + ".truth.json", "files": [f for f, _ in spec["files"]]}
        docs.append((capname, path, doc))
    set_spec = {k: val for k, val in spec.items() if k != "files"}
    errors, reaction, _ = check(sc, set_spec, paths)
    for e in errors:
        print("%s: the set analysed together: %s" % (sc, e))
    if failed or errors:
        return 1
    for capname, path, doc in docs:
        dst = os.path.join(outdir, capname)
        shutil.copyfile(path, dst)
        os.chmod(dst, 0o644)
        write_truth(outdir, capname[:-len(".pcap")], doc)
    write_truth(outdir, sc, truth_doc(sc, set_spec, [c for c, _, _ in docs], "EN10MB", reaction, obs))
    print("%s: ok (%s and the set)" % (sc, ", ".join(c for c, _, _ in docs)))
    return 0


def finish(sc, capdir, obsfile, outdir):
    spec = SCENARIOS[sc]
    obs = {}
    if os.path.exists(obsfile):
        with open(obsfile) as f:
            obs = json.load(f)
    if "files" in spec:
        return finish_rotated(sc, spec, capdir, outdir, obs)
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
        write_truth(outdir, stem, doc)
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
