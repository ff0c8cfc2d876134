#!/usr/bin/env python3
"""Checks an S2Scope report of a real-server TLS capture against its truth file
(scripts/lab/tls-servers.sh, fixtures/tls/servers-*.truth.json).

    tls-check.py analyze TRUTH.json REPORT.json
        REPORT.json: `s2scope analyze --format json` of the capture (with --keylog, or of the
        DSB pcapng without it).
    tls-check.py live TRUTH.json EVENTS.jsonl --rc N [--fail-on high] [--expect-held]
        EVENTS.jsonl: `s2scope live --keylog ... --format jsonl` during the run. --expect-held:
        the key log was late (a delayed copy), so sessions must have held records and every one
        of them must have been released.

Both check: every connection switched to TLS with the truth's version and was decrypted whole
(decryption "decrypted", 0 undecrypted bytes, as many decrypted bytes per connection as tshark
decrypts); the dialback exchanges and the SASL authentications (initiating and receiving
domain, mechanism, outcome) are those of the truth; no violation at or above the truth's
forbid level; no `encrypted` anomaly. Exit status 0 pass, 1 fail (reasons printed), 2 bad input.
"""
import argparse
import json
import sys
from collections import Counter

SEVERITIES = ["info", "low", "medium", "high", "critical"]


def rank(s):
    return SEVERITIES.index(s) if s in SEVERITIES else -1


def check(truth, connections, dialbacks, violations, anomalies, errors):
    want_conns = truth["expect_tls_connections"]
    if len(connections) != want_conns:
        errors.append("%d connections, truth has %d" % (len(connections), want_conns))
    for c in connections:
        t = c.get("tls_info") or {}
        key = "%s>%s" % (c.get("client"), c.get("server"))
        want = sum(truth["decrypted_bytes"].get(key, [-1]))
        if not c.get("tls"):
            errors.append("%s (%s) did not switch to TLS" % (c.get("id"), key))
        if t.get("version") != truth["tls_version"]:
            errors.append("%s: TLS version %s, truth %s" % (c.get("id"), t.get("version"), truth["tls_version"]))
        if t.get("decryption") != "decrypted" or t.get("undecrypted_bytes") != 0:
            errors.append("%s: decryption %s, %s bytes not decrypted (%s)" % (c.get("id"), t.get("decryption"),
                          t.get("undecrypted_bytes"), t.get("decryption_note")))
        if t.get("decrypted_bytes") != want:
            errors.append("%s: %s bytes decrypted, tshark decrypts %s" % (c.get("id"), t.get("decrypted_bytes"), want))
    got_db = Counter((d.get("originating"), d.get("receiving"), d.get("outcome")) for d in dialbacks)
    want_db = Counter((d["originating"], d["receiving"], d["outcome"]) for d in truth["dialbacks"])
    if got_db != want_db:
        errors.append("dialbacks %s, truth %s" % (sorted(got_db.elements()), sorted(want_db.elements())))
    got_sasl = Counter((s.get("initiating"), s.get("receiving"), s.get("mechanism"), s.get("outcome"))
                       for c in connections for s in c.get("sasl", []))
    want_sasl = Counter((s["initiating"], s["receiving"], s["mechanism"], s["outcome"]) for s in truth["sasl"])
    if got_sasl != want_sasl:
        errors.append("SASL %s, truth %s" % (sorted(got_sasl.elements()), sorted(want_sasl.elements())))
    limit = rank(truth.get("forbid_violations_at_or_above") or "critical")
    for v in violations:
        if rank(v.get("severity")) >= limit:
            errors.append("violation %s [%s] on %s packet %s: %s" % (v.get("rule"), v.get("severity"), v.get("connection"),
                                                                    v.get("packet"), v.get("message")))
    for a in anomalies:
        if a.get("kind") == "encrypted":
            errors.append("encrypted anomaly: %s" % a.get("message"))
    print("  %d connections decrypted, dialbacks %s, SASL %s, %d violations (%s)"
          % (len(connections), sorted(got_db.elements()), sorted(got_sasl.elements()), len(violations),
             ", ".join(sorted({"%s/%s" % (v.get("rule"), v.get("severity")) for v in violations})) or "none"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("analyze")
    a.add_argument("truth")
    a.add_argument("report")
    lv = sub.add_parser("live")
    lv.add_argument("truth")
    lv.add_argument("events")
    lv.add_argument("--rc", type=int, required=True)
    lv.add_argument("--fail-on", default="high", choices=SEVERITIES)
    lv.add_argument("--expect-held", action="store_true")
    args = ap.parse_args()
    try:
        with open(args.truth) as f:
            truth = json.load(f)
        errors = []
        if args.cmd == "analyze":
            with open(args.report) as f:
                r = json.load(f)
            print("tls-check analyze %s (%s)" % (truth["scenario"], args.report))
            check(truth, r.get("connections", []), r.get("dialbacks", []), r.get("violations", []),
                  r.get("anomalies", []), errors)
        else:
            events = []
            with open(args.events) as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            events.append(json.loads(line))
                        except ValueError:
                            errors.append("line %d is not JSON: %s" % (n, line[:100]))
            kind = lambda k: [e for e in events if e.get("event") == k]  # noqa: E731
            print("tls-check live %s (%s)" % (truth["scenario"], args.events))
            violations = kind("violation")
            check(truth, kind("connection"), kind("dialback"), violations, kind("anomaly"), errors)
            stats = kind("stats")
            if not stats:
                errors.append("no final stats line: s2scope did not stop cleanly")
            else:
                s = stats[-1]
                print("  key log: %s sessions; sessions that waited %s, released %s, dropped %s; bytes dropped %s"
                      % (s.get("keylog_sessions"), s.get("tls_sessions_waited"), s.get("tls_sessions_released"),
                         s.get("tls_sessions_dropped"), s.get("tls_bytes_dropped")))
                if (s.get("keylog_sessions") or 0) < truth["tls_sessions"]:
                    errors.append("the key log gave %s sessions, the capture has %d" % (s.get("keylog_sessions"), truth["tls_sessions"]))
                if s.get("tls_sessions_dropped") != 0 or s.get("tls_bytes_dropped") != 0:
                    errors.append("sessions gave up waiting for their secrets: %s" % s)
                if args.expect_held and not (s.get("tls_sessions_waited", 0) >= 1
                                             and s.get("tls_sessions_released") == s.get("tls_sessions_waited")):
                    errors.append("with a late key log sessions should have held their records and been released: %s" % s)
            failing = [v for v in violations if rank(v.get("severity")) >= rank(args.fail_on)]
            if args.rc != (1 if failing else 0):
                errors.append("s2scope live exited %d with %d violations at or above %s" % (args.rc, len(failing), args.fail_on))
    except (OSError, ValueError, KeyError) as e:
        print("tls-check: cannot read the inputs: %s" % e)
        return 2
    for e in errors:
        print("tls-check: FAIL: " + e)
    print("tls-check: %s" % ("FAIL" if errors else "ok"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
