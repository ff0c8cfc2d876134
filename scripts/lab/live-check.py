#!/usr/bin/env python3
"""Checks for scripts/lab/live-test.sh (Python 3 standard library only).

    live-check.py federation EVENTS.jsonl --rc N [--fail-on high] [--bad-ip IP]
                  [--expect-dialback ORIG,RECV,OUTCOME ...] [--expect-rule RULE ...]
                  [--forbid-at-or-above medium]
        `s2scope live --format jsonl` output of a live run in the lab:
        * every line is a JSON object with an "event";
        * the final "stats" line is there (s2scope stopped cleanly);
        * every --expect-dialback is reported;
        * violations on connections that do not touch --bad-ip (the real
          servers among themselves) stay below --forbid-at-or-above;
        * every --expect-rule is reported on a connection that touches --bad-ip;
        * --rc (s2scope's exit status) is 1 if a violation at or above
          --fail-on was reported, 0 otherwise.

    live-check.py compare LIVE.jsonl ANALYZE.json
        The verdicts of `s2scope live` on a replayed capture against those of
        `s2scope analyze --format json` on the same file: the same set of
        (rule, severity) violations and the same list of (originating,
        receiving, outcome) dialbacks; frame numbers, ids and times are ignored.
        Also the number of packets seen must match (nothing dropped).

Exit status 0 = pass, 1 = fail (the reasons are printed), 2 = usage/input error.
"""
import argparse
import json
import sys

SEVERITIES = ["info", "low", "medium", "high", "critical"]


def sev_rank(name):
    return SEVERITIES.index(name)


def read_events(path):
    events, bad = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except ValueError as e:
                bad.append("line %d is not JSON (%s): %s" % (n, e, line[:120]))
                continue
            if not isinstance(ev, dict) or "event" not in ev:
                bad.append("line %d has no 'event': %s" % (n, line[:120]))
                continue
            events.append(ev)
    return events, bad


def ip_of(endpoint):
    """'10.53.0.1:5269' or '[::1]:5269' -> address."""
    if not endpoint:
        return None
    if endpoint.startswith("["):
        return endpoint[1:endpoint.index("]")]
    return endpoint.rsplit(":", 1)[0]


def by_kind(events, kind):
    return [e for e in events if e.get("event") == kind]


def fmt_v(v):
    return "%s/%s on %s (%s, packet %s): %s" % (v.get("rule"), v.get("severity"), v.get("connection"),
                                                 v.get("direction"), v.get("packet"),
                                                 (v.get("message") or "")[:100])


def federation(args):
    events, errors = read_events(args.events)
    if not events:
        errors.append("no events at all in %s" % args.events)
    stats = by_kind(events, "stats")
    if not stats:
        errors.append("no final 'stats' line: s2scope did not shut down cleanly")
    conns = {}
    for c in by_kind(events, "connection"):
        conns[c.get("id")] = (ip_of(c.get("client")), ip_of(c.get("server")))
    dialbacks = by_kind(events, "dialback")
    violations = by_kind(events, "violation")

    print("live-check: %d events: %d connections, %d dialbacks, %d violations, %d anomalies"
          % (len(events), len(conns), len(dialbacks), len(violations),
             len(by_kind(events, "anomaly"))))
    for d in dialbacks:
        print("  dialback  %s -> %s  %s" % (d.get("originating"), d.get("receiving"), d.get("outcome")))
    got = [(d.get("originating"), d.get("receiving"), d.get("outcome")) for d in dialbacks]
    for want in args.expect_dialback:
        t = tuple(want.split(","))
        if len(t) != 3:
            print("live-check: --expect-dialback wants ORIG,RECV,OUTCOME, got %r" % want)
            return 2
        if t not in got:
            errors.append("no dialback %s -> %s with outcome %s (got %s)" % (t[0], t[1], t[2], got))

    def touches_bad(v):
        ips = conns.get(v.get("connection"))
        return bool(args.bad_ip) and ips is not None and args.bad_ip in ips

    clean = [v for v in violations if not touches_bad(v)]
    bad = [v for v in violations if touches_bad(v)]
    print("  violations between the real servers: %s"
          % (", ".join(sorted({"%s/%s" % (v["rule"], v["severity"]) for v in clean})) or "none"))
    if args.bad_ip:
        print("  violations on connections of %s: %s" % (
            args.bad_ip, ", ".join(sorted({"%s/%s" % (v["rule"], v["severity"]) for v in bad})) or "none"))
    if args.forbid_at_or_above:
        limit = sev_rank(args.forbid_at_or_above)
        for v in clean:
            if sev_rank(v.get("severity", "info")) >= limit:
                errors.append("forbidden violation between real servers: " + fmt_v(v))
    for rule in args.expect_rule:
        if not any(v.get("rule") == rule for v in bad):
            errors.append("expected violation %s on a connection of %s not reported (all rules: %s)"
                          % (rule, args.bad_ip, sorted({v.get("rule") for v in violations})))
    failing = [v for v in violations if sev_rank(v.get("severity", "info")) >= sev_rank(args.fail_on)]
    want_rc = 1 if failing else 0
    if args.rc != want_rc:
        errors.append("s2scope exited %d, expected %d (%d violations at or above %s)"
                      % (args.rc, want_rc, len(failing), args.fail_on))
    if stats:
        s = stats[-1]
        print("  final stats: packets %s, kernel_received %s, kernel_dropped %s, interface_dropped %s, "
              "rss %s bytes" % (s.get("packets"), s.get("kernel_received"), s.get("kernel_dropped"),
                                s.get("interface_dropped"), s.get("rss_bytes")))
    print("  exit status %d (expected %d with --fail-on %s)" % (args.rc, want_rc, args.fail_on))
    return report(errors)


def compare(args):
    events, errors = read_events(args.live)
    try:
        with open(args.analyze, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print("live-check: cannot read %s: %s" % (args.analyze, e))
        return 2
    lv = {(v.get("rule"), v.get("severity")) for v in by_kind(events, "violation")}
    av = {(v.get("rule"), v.get("severity")) for v in doc.get("violations", [])}
    ld = sorted((d.get("originating"), d.get("receiving"), d.get("outcome"))
                for d in by_kind(events, "dialback"))
    ad = sorted((d.get("originating"), d.get("receiving"), d.get("outcome"))
                for d in doc.get("dialbacks", []))
    stats = by_kind(events, "stats")
    lp = stats[-1].get("packets") if stats else None
    ap = doc.get("summary", {}).get("packets")
    print("live-check compare: live %d violation kinds, %d dialbacks, %s packets; "
          "analyze %d violation kinds, %d dialbacks, %s packets"
          % (len(lv), len(ld), lp, len(av), len(ad), ap))
    for d in ld:
        print("  dialback  %s -> %s  %s" % d)
    print("  violations: %s" % ", ".join("%s/%s" % x for x in sorted(lv)))
    if not stats:
        errors.append("live: no final 'stats' line")
    if lp != ap:
        errors.append("live saw %s packets, analyze %s (drops or extra traffic)" % (lp, ap))
    if lv != av:
        if lv - av:
            errors.append("only live: %s" % sorted(lv - av))
        if av - lv:
            errors.append("only analyze: %s" % sorted(av - lv))
    if ld != ad:
        errors.append("dialbacks differ: live %s, analyze %s" % (ld, ad))
    return report(errors)


def report(errors):
    if errors:
        for e in errors:
            print("live-check: FAIL: " + e)
        return 1
    print("live-check: ok")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("federation")
    f.add_argument("events")
    f.add_argument("--rc", type=int, required=True)
    f.add_argument("--fail-on", default="high", choices=SEVERITIES)
    f.add_argument("--bad-ip")
    f.add_argument("--expect-dialback", action="append", default=[])
    f.add_argument("--expect-rule", action="append", default=[])
    f.add_argument("--forbid-at-or-above", default="medium", choices=SEVERITIES)
    c = sub.add_parser("compare")
    c.add_argument("live")
    c.add_argument("analyze")
    args = ap.parse_args()
    try:
        return federation(args) if args.cmd == "federation" else compare(args)
    except OSError as e:
        print("live-check: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
