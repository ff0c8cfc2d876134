#!/usr/bin/env python3
"""Compare an S2Scope JSON report with a lab ground-truth file.

    check-truth.py [--strict-actor] [--forbid-unexpected LEVEL] [--damaged] CAPTURE TRUTH.json REPORT.json

REPORT.json is the output of `s2scope analyze --format json CAPTURE` (schema
s2scope/1, see /work/shared/spec/REPORT.md); TRUTH.json is written by
scripts/lab/scenarios.py (fields documented there and in fixtures/lab/README.md).

Checks (each failure is listed; exit 1 if any):
  * the report analysed CAPTURE (warning only if the path differs) with the
    truth's link type;
  * dialbacks: the multiset of (originating, receiving, outcome) equals the
    truth (a truth outcome may be a list of accepted values); ids, ports and
    times are ignored.  verify_seen=true must have a verify_connection,
    verify_seen=false must not.  Extra report dialbacks fail unless the truth
    says "dialbacks_complete": false;
  * every expected violation's rule appears in the report.  Its from_ip / actor
    are compared too, but only warned about unless --strict-actor (the report's
    direction names the evidence, which for reaction rules is not always the
    actor's own packet);
  * no violation at or above forbid_violations_at_or_above (or
    --forbid-unexpected LEVEL for every scenario) other than the expected and
    allowed rules;
  * at least expect_tls_connections connections marked "tls": true.
With --damaged (REPORT.json is of the capture with packets removed: a lossy sensor, a capture
started late) only the forbidden-violation check applies, with --forbid-unexpected medium by
default: what was lost may hide exchanges and expected violations, but it must never make
legitimate traffic look guilty.
Exit status: 0 all checks pass, 1 a check failed, 2 unusable input.
"""
import argparse
import json
import os
import sys
from collections import Counter

SEVERITIES = ["info", "low", "medium", "high", "critical"]


def sev_rank(s):
    s = (s or "").lower()
    aliases = {"crit": "critical", "med": "medium"}
    s = aliases.get(s, s)
    return SEVERITIES.index(s) if s in SEVERITIES else -1


def outcome_matches(want, got):
    return got in want if isinstance(want, list) else got == want


def fmt_db(d):
    o = d.get("outcome")
    o = "|".join(o) if isinstance(o, list) else o
    return "%s -> %s: %s" % (d.get("originating"), d.get("receiving"), o)


def conn_index(report):
    idx = {}
    for c in report.get("connections", []) or []:
        idx[c.get("id")] = c
    return idx


def host_of(endpoint):
    """'192.0.2.1:40312' or '[2001:db8::1]:5269' -> host part."""
    if endpoint is None:
        return None
    if endpoint.startswith("["):
        return endpoint[1:endpoint.index("]")]
    return endpoint.rsplit(":", 1)[0]


def sender_ip(v, conns):
    c = conns.get(v.get("connection"))
    if not c:
        return None
    if v.get("direction") == "client-to-server":
        return host_of(c.get("client"))
    if v.get("direction") == "server-to-client":
        return host_of(c.get("server"))
    return None


def involved_ips(v, conns):
    c = conns.get(v.get("connection"))
    if not c:
        return set()
    return {host_of(c.get("client")), host_of(c.get("server"))}


def main(argv=None):
    ap = argparse.ArgumentParser(description="compare an s2scope report with lab ground truth")
    ap.add_argument("capture")
    ap.add_argument("truth")
    ap.add_argument("report")
    ap.add_argument("--strict-actor", action="store_true",
                    help="fail (not only warn) when an expected violation's from_ip/actor differ")
    ap.add_argument("--forbid-unexpected", metavar="LEVEL",
                    help="fail on any unexpected violation at or above LEVEL, in every scenario")
    ap.add_argument("--damaged", action="store_true",
                    help="the report is of a damaged copy of CAPTURE: check only forbidden violations")
    args = ap.parse_args(argv)
    if args.damaged and not args.forbid_unexpected:
        args.forbid_unexpected = "medium"

    try:
        with open(args.truth) as f:
            truth = json.load(f)
        with open(args.report) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        print("check-truth: cannot read input: %s" % e, file=sys.stderr)
        return 2
    if not isinstance(report, dict):
        print("check-truth: report is not a JSON object", file=sys.stderr)
        return 2

    name = truth.get("scenario", os.path.basename(args.truth))
    failures, warnings = [], []

    # -- input ---------------------------------------------------------------
    if report.get("schema") != "s2scope/1":
        warnings.append("report schema is %r, expected 's2scope/1'" % report.get("schema"))
    inputs = report.get("inputs") or []
    if not inputs:
        failures.append("report has no inputs[]")
    else:
        inp = inputs[0]
        if os.path.basename(str(inp.get("path", ""))) != os.path.basename(args.capture):
            warnings.append("report input %r is not %r" % (inp.get("path"), args.capture))
        want_lt = truth.get("link_type")
        if want_lt and inp.get("link_type") != want_lt:
            failures.append("link_type: report %r, truth %r" % (inp.get("link_type"), want_lt))
        if inp.get("truncated"):
            failures.append("report says the capture is truncated")
    conns = conn_index(report)

    # -- dialbacks -------------------------------------------------------------
    want = [] if args.damaged else list(truth.get("dialbacks", []))
    got = list(report.get("dialbacks", []) or [])
    unmatched_got = list(got)
    missing = []
    # match entries with a single accepted outcome first, lists afterwards
    for w in sorted(want, key=lambda d: isinstance(d.get("outcome"), list)):
        for i, g in enumerate(unmatched_got):
            if (g.get("originating"), g.get("receiving")) == (w.get("originating"), w.get("receiving")) \
                    and outcome_matches(w.get("outcome"), g.get("outcome")):
                if "verify_seen" in w:
                    seen = g.get("verify_connection") not in (None, "", "null")
                    if seen != bool(w["verify_seen"]):
                        failures.append("dialback %s: verify_seen truth=%s, report verify_connection=%r"
                                        % (fmt_db(w), w["verify_seen"], g.get("verify_connection")))
                del unmatched_got[i]
                break
        else:
            missing.append(w)
    for w in missing:
        failures.append("missing dialback   %s" % fmt_db(w))
    if unmatched_got and truth.get("dialbacks_complete", True) and not args.damaged:
        for g in unmatched_got:
            failures.append("unexpected dialback %s  (report id %s)" % (fmt_db(g), g.get("id")))
    if missing or (unmatched_got and truth.get("dialbacks_complete", True) and not args.damaged):
        failures.append("dialbacks truth : %s" % sorted(Counter(fmt_db(d) for d in want).items()))
        failures.append("dialbacks report: %s" % sorted(Counter(fmt_db(d) for d in got).items()))

    # -- expected violations ------------------------------------------------------
    violations = list(report.get("violations", []) or [])
    by_rule = {}
    for v in violations:
        by_rule.setdefault(v.get("rule"), []).append(v)
    for ev in ([] if args.damaged else truth.get("expect_violations", [])):
        rule = ev.get("rule")
        cands = by_rule.get(rule, [])
        if not cands:
            failures.append("missing violation %s (%s, %s): %s"
                            % (rule, ev.get("actor"), ev.get("from_ip"), ev.get("note", "")))
            continue
        ip = ev.get("from_ip")
        problems = []
        if ip:
            if not any(sender_ip(v, conns) == ip for v in cands):
                if any(ip in involved_ips(v, conns) for v in cands):
                    problems.append("reported on a connection of %s but with direction from the peer" % ip)
                else:
                    problems.append("no %s report involves %s" % (rule, ip))
        actor = ev.get("actor")
        if actor and not any(v.get("actor") == actor for v in cands):
            problems.append("actor %r not among %r" % (actor, sorted({str(v.get("actor")) for v in cands})))
        for p in problems:
            (failures if args.strict_actor else warnings).append("violation %s: %s" % (rule, p))

    # -- forbidden violations ------------------------------------------------------
    levels = [l for l in (truth.get("forbid_violations_at_or_above"), args.forbid_unexpected) if l]
    if levels:
        limit = min(sev_rank(l) for l in levels)
        ok_rules = {e.get("rule") for e in truth.get("expect_violations", [])} | \
                   {a.get("rule") for a in truth.get("allow_violations", [])}
        for v in violations:
            if v.get("rule") in ok_rules:
                continue
            if sev_rank(v.get("severity")) >= limit:
                failures.append("forbidden violation %s [%s] on %s packet %s: %s"
                                % (v.get("rule"), v.get("severity"), v.get("connection"),
                                   v.get("packet"), v.get("message", "")))

    # -- TLS ---------------------------------------------------------------------
    want_tls = None if args.damaged else truth.get("expect_tls_connections")
    if want_tls is not None:
        n = sum(1 for c in conns.values() if c.get("tls"))
        if n < want_tls:
            failures.append("%d connections marked tls, expected %d" % (n, want_tls))

    # -- verdict -------------------------------------------------------------------
    for w in warnings:
        print("%s: warning: %s" % (name, w))
    if failures:
        print("%s: FAIL (%s)" % (name, args.capture))
        for f in failures:
            print("  - " + f)
        return 1
    print("%s: ok (%d dialbacks, %d violations in report, %d expected)"
          % (name, len(got), len(violations), len(truth.get("expect_violations", []))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
