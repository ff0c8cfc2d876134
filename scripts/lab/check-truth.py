#!/usr/bin/env python3
"""Compare an S2Scope JSON report with a lab ground-truth file.

    check-truth.py [--strict-actor] [--strict-pending] [--pending FILE]
                   [--forbid-unexpected LEVEL] [--damaged] CAPTURE TRUTH.json REPORT.json

REPORT.json is the output of `s2scope analyze --format json CAPTURE...` (schema
s2scope/1, see /work/shared/spec/REPORT.md); TRUTH.json is written by
scripts/lab/scenarios.py (fields documented there and in fixtures/lab/README.md).
A truth with `captures` (a rotated set) describes the report of all those files
analysed together, in that order; CAPTURE is then any one of them.

Checks (each failure is listed; exit 1 if any):
  * the report analysed CAPTURE (or the truth's `captures`, in order; warning
    only if a path differs) with the truth's link type;
  * dialbacks: the multiset of (originating, receiving, outcome) equals the
    truth (a truth outcome may be a list of accepted values); ids, ports and
    times are ignored.  verify_seen=true must have a verify_connection,
    verify_seen=false must not.  Extra report dialbacks fail unless the truth
    says "dialbacks_complete": false;
  * every expected violation's rule appears in the report, with the truth's
    `severity` (if given) and exactly `count` reports (if given; counted on the
    connections of from_ip).  Its from_ip / actor are compared too, but only
    warned about unless --strict-actor (the report's direction names the
    evidence, which for reaction rules is not always the actor's own packet);
  * no violation at or above forbid_violations_at_or_above (or
    --forbid-unexpected LEVEL for every scenario) other than the expected and
    allowed rules;
  * expect_midstream_connections: exactly that many connections carry a
    `midstream-pickup` anomaly;
  * non_xmpp_connections: the report lists a connection for each;
  * expect_servers (issue #18): for each expected server a row of the report's
    servers[] with the same addresses, domains and roles, the expected findings
    (rule, severity, count) and no other finding at or above the forbidden
    level; its dialback counts by role are checked against dialbacks[];
  * at least expect_tls_connections connections marked "tls": true.
With --damaged (REPORT.json is of the capture with packets removed: a lossy sensor, a capture
started late) only the forbidden-violation check applies (also inside expect_servers rows), with
--forbid-unexpected medium by default: what was lost may hide exchanges and expected violations,
but it must never make legitimate traffic look guilty.

Known analyzer gaps: when the truth's directory (or --pending FILE) holds
analyzer-pending.json with an entry for the truth's scenario, a failing check is
reported as PENDING (exit 0), and a check that passes although it is listed
there fails ("remove the entry"), so the list never outlives the fix (not with
--damaged, which checks only a part).  An entry with "damaged": true excuses
only the --damaged check.  --strict-pending treats PENDING as a failure.
Exit status: 0 all checks pass (or pending), 1 a check failed, 2 unusable input.
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


def load_pending(truth_path, path=None):
    """{scenario: {issue, reason}} from analyzer-pending.json beside the truth file."""
    p = path or os.path.join(os.path.dirname(os.path.abspath(truth_path)), "analyzer-pending.json")
    try:
        with open(p) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    return doc.get("pending", {}) if isinstance(doc, dict) else {}


def check_servers(truth, report, levels, only_forbidden=False):
    """expect_servers against the report's servers[] (REPORT.md) and dialbacks[]
    (only_forbidden: a damaged copy, where only forbidden findings count)."""
    fails = []
    rows = report.get("servers")
    if not isinstance(rows, list):
        return [] if only_forbidden else ["report has no servers[] (per-server table, issue #18)"]
    limit = min(sev_rank(lv) for lv in levels) if levels else None
    dbs = report.get("dialbacks", []) or []
    for want in truth["expect_servers"]:
        addrs = set(want.get("addresses", []))
        label = "/".join(want.get("domains", [])) or "/".join(addrs)
        row = next((r for r in rows if addrs & set(r.get("addresses", []) or [])), None)
        if row is None:
            if not only_forbidden:
                fails.append("server %s: no servers[] row with address %s" % (label, sorted(addrs)))
            continue
        if only_forbidden:
            ok = {wf["rule"] for wf in want.get("findings", [])}
            limit = min(sev_rank(lv) for lv in levels) if levels else None
            for f in row.get("findings", []) or []:
                if limit is not None and f.get("rule") not in ok and sev_rank(f.get("severity")) >= limit:
                    fails.append("server %s: forbidden finding %s [%s] x%s"
                                 % (label, f.get("rule"), f.get("severity"), f.get("count")))
            continue
        if set(row.get("addresses", []) or []) != addrs:
            fails.append("server %s: addresses %s, truth %s"
                         % (label, sorted(row.get("addresses", []) or []), sorted(addrs)))
        if set(row.get("domains", []) or []) != set(want.get("domains", [])):
            fails.append("server %s: domains %s, truth %s"
                         % (label, sorted(row.get("domains", []) or []), sorted(want.get("domains", []))))
        if "roles" in want and set(row.get("roles", []) or []) != set(want["roles"]):
            fails.append("server %s: roles %s, truth %s"
                         % (label, sorted(row.get("roles", []) or []), sorted(want["roles"])))
        got = {}
        for f in row.get("findings", []) or []:
            got.setdefault(f.get("rule"), []).append(f)
        for wf in want.get("findings", []):
            fs = got.get(wf["rule"], [])
            if not fs:
                fails.append("server %s: finding %s missing" % (label, wf["rule"]))
                continue
            if wf.get("severity") and not any(sev_rank(f.get("severity")) == sev_rank(wf["severity"])
                                               for f in fs):
                fails.append("server %s: finding %s severity %s, truth %s"
                             % (label, wf["rule"], sorted({str(f.get("severity")) for f in fs}),
                                wf["severity"]))
            n = sum(int(f.get("count", 1) or 0) for f in fs)
            if wf.get("count") is not None and n != wf["count"]:
                fails.append("server %s: finding %s count %d, truth %d" % (label, wf["rule"], n, wf["count"]))
        if limit is not None:
            ok = {wf["rule"] for wf in want.get("findings", [])}
            for f in row.get("findings", []) or []:
                if f.get("rule") not in ok and sev_rank(f.get("severity")) >= limit:
                    fails.append("server %s: forbidden finding %s [%s] x%s"
                                 % (label, f.get("rule"), f.get("severity"), f.get("count")))
        doms = set(want.get("domains", []))
        for role, key in (("originating", "dialbacks_as_originating"), ("receiving", "dialbacks_as_receiving")):
            if key not in want:
                continue
            counts = Counter(str(d.get("outcome")) for d in dbs if d.get(role) in doms)
            if dict(counts) != want[key]:
                fails.append("server %s: dialbacks as %s %s, truth %s"
                             % (label, role, dict(counts), want[key]))
    return fails


def main(argv=None):
    ap = argparse.ArgumentParser(description="compare an s2scope report with lab ground truth")
    ap.add_argument("capture")
    ap.add_argument("truth")
    ap.add_argument("report")
    ap.add_argument("--strict-actor", action="store_true",
                    help="fail (not only warn) when an expected violation's from_ip/actor differ")
    ap.add_argument("--forbid-unexpected", metavar="LEVEL",
                    help="fail on any unexpected violation at or above LEVEL, in every scenario")
    ap.add_argument("--strict-pending", action="store_true",
                    help="a known analyzer gap (analyzer-pending.json) fails like any other")
    ap.add_argument("--pending", metavar="FILE",
                    help="the known-gap list to use (default: analyzer-pending.json beside TRUTH)")
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
        want_files = truth.get("captures") or [os.path.basename(args.capture)]
        got_files = [os.path.basename(str(i.get("path", ""))) for i in inputs]
        if truth.get("captures") and not args.damaged:
            if got_files != want_files:
                failures.append("report inputs %s, truth wants the set %s in this order"
                                % (got_files, want_files))
        elif got_files[0] != want_files[0]:
            warnings.append("report input %r is not %r" % (inputs[0].get("path"), args.capture))
        want_lt = truth.get("link_type")
        for inp in inputs:
            if want_lt and inp.get("link_type") != want_lt:
                failures.append("link_type: report %r, truth %r" % (inp.get("link_type"), want_lt))
            if inp.get("truncated"):
                failures.append("report says %s is truncated" % inp.get("path"))
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
        # severity and count are judged on the reports that involve from_ip
        near = [v for v in cands if ip in involved_ips(v, conns)] if ip else cands
        near = near or cands
        if ev.get("severity") and not any(sev_rank(v.get("severity")) == sev_rank(ev["severity"])
                                          for v in near):
            failures.append("violation %s: severity %s in the truth, report says %s"
                            % (rule, ev["severity"], sorted({str(v.get("severity")) for v in near})))
        if ev.get("count") is not None and len(near) != ev["count"]:
            failures.append("violation %s: reported %d times (on connections of %s), truth says %d"
                            % (rule, len(near), ip, ev["count"]))
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
    levels = [lv for lv in (truth.get("forbid_violations_at_or_above"), args.forbid_unexpected) if lv]
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

    # -- connections picked up mid-stream ------------------------------------------
    want_mid = None if args.damaged else truth.get("expect_midstream_connections")
    if want_mid is not None:
        mid = {a.get("connection") for a in report.get("anomalies", []) or []
               if a.get("kind") == "midstream-pickup"}
        if len(mid) != want_mid:
            failures.append("%d connections reported as picked up mid-stream, truth says %d"
                            % (len(mid), want_mid))

    # -- connections that carry no XMPP -------------------------------------------
    for nx in ([] if args.damaged else truth.get("non_xmpp_connections", [])):
        if not any(host_of(c.get("client")) == nx.get("client")
                   and host_of(c.get("server")) == nx.get("server") for c in conns.values()):
            failures.append("no connection %s -> %s (%s) in the report"
                            % (nx.get("client"), nx.get("server"), nx.get("what")))

    # -- per-server rows (issue #18) --------------------------------------------------
    if truth.get("expect_servers"):
        failures += check_servers(truth, report, levels, only_forbidden=args.damaged)

    # -- TLS ---------------------------------------------------------------------
    want_tls = None if args.damaged else truth.get("expect_tls_connections")
    if want_tls is not None:
        n = sum(1 for c in conns.values() if c.get("tls"))
        if n < want_tls:
            failures.append("%d connections marked tls, expected %d" % (n, want_tls))

    # -- verdict -------------------------------------------------------------------
    for w in warnings:
        print("%s: warning: %s" % (name, w))
    pending = load_pending(args.truth, args.pending).get(name)
    if pending and pending.get("damaged") and not args.damaged:
        pending = None     # a gap of damaged copies only: the capture itself must pass
    if failures and pending and not args.strict_pending:
        print("%s: PENDING (known analyzer gap, %s) (%s)" % (name, pending.get("issue", "?"), args.capture))
        for f in failures:
            print("  - " + f)
        return 0
    if failures:
        print("%s: FAIL (%s)" % (name, args.capture))
        for f in failures:
            print("  - " + f)
        return 1
    if pending and not args.damaged:
        print("%s: FAIL: listed in analyzer-pending.json (%s) but every check passes now: "
              "remove its entry" % (name, pending.get("issue", "?")))
        return 1
    print("%s: ok (%d dialbacks, %d violations in report, %d expected)"
          % (name, len(got), len(violations), len(truth.get("expect_violations", []))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
