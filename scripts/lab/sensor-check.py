#!/usr/bin/env python3
"""Checks for the long-lived sensor tests of `s2scope live` (Python 3 standard library only).

    sensor-check.py valid FILE...
        Every file is valid JSON Lines as `live` writes them: each line one JSON object with an
        "event", the file ends with a newline (no half line), and is not empty.

    sensor-check.py metric URL SERIES [--source ADDR]
        Prints the value of one series of a Prometheus text exposition (exit 1 if absent, 2 if the
        scrape failed), e.g.  metric http://127.0.0.1:9269/metrics 's2scope_capture_up{interface="x"}'

    sensor-check.py downup EVENTS --rc N
        The events of the down/up + delete/re-create run of live-robust.sh: two interruptions in
        order (down: stopped then resumed without reopening after >= 1.5 s; gone: stopped and
        reopening, then resumed (reopened)), the findings of the replay before, between and after,
        each after the right interruption, the final stats line and the exit status.

    sensor-check.py diskfull FAILED.jsonl REOPENED.jsonl --rc N --stderr FILE
        The disk-full run: both files valid; the reopened file starts with an output-failed anomaly
        that counts lost events, holds the findings of the replay after the reopening and the final
        stats; standard error says once that the output stopped and once that it was reopened.

    sensor-check.py rotation LIVE.jsonl... --analyze A.json...
        The rotated files, each valid and not empty, hold together exactly the connections,
        dialbacks and violations that `s2scope analyze` reports for the replayed captures (one
        report per capture, summed), none twice; only the last file holds the final stats.

    sensor-check.py threads PID
        CPU seconds used so far by each thread of a process, by thread name, as JSON
        (e.g. {"s2scope": 12.3, "NIO-ELT-0-#0": 0.2}).

    sensor-check.py same-findings BASE.jsonl OTHER.jsonl
        Two live runs over the same replay found the same: connections, dialbacks and violations
        (multisets, times and ids ignored) and the same packet count in the final stats line.

Exit status 0 = pass, 1 = fail (reasons printed), 2 = usage/input error.
"""
import argparse
import collections
import json
import socket
import sys
import urllib.request


def read_lines(path):
    """(events, problems) of one JSON Lines file."""
    problems = []
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return [], ["%s is empty" % path]
    if not data.endswith(b"\n"):
        problems.append("%s ends in the middle of a line: %r" % (path, data[-80:]))
    events = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        if not raw:
            continue
        try:
            ev = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            problems.append("%s line %d is not JSON (%s): %r" % (path, n, e, raw[:100]))
            continue
        if not isinstance(ev, dict) or "event" not in ev:
            problems.append("%s line %d has no event: %r" % (path, n, raw[:100]))
            continue
        events.append(ev)
    return events, problems


def kinds(events, kind):
    return [e for e in events if e.get("event") == kind]


def findings(events):
    """Multisets of what a run found, without times and ids."""
    return {
        "connections": collections.Counter((c.get("client"), c.get("server"), c.get("close")) for c in kinds(events, "connection")),
        "dialbacks": collections.Counter((d.get("originating"), d.get("receiving"), d.get("outcome")) for d in kinds(events, "dialback")),
        "violations": collections.Counter((v.get("rule"), v.get("severity")) for v in kinds(events, "violation")),
    }


def short(counter, n=8):
    """The first n entries of a multiset difference, and how many more."""
    items = sorted(counter.items(), key=lambda kv: str(kv[0]))
    text = ", ".join("%s x%d" % (k, v) for k, v in items[:n])
    return text + (" ... (%d more)" % (len(items) - n) if len(items) > n else "") if items else "none"


def report(errors, what):
    if errors:
        for e in errors:
            print("sensor-check %s: FAIL: %s" % (what, e))
        return 1
    print("sensor-check %s: ok" % what)
    return 0


def cmd_valid(args):
    errors = []
    for p in args.files:
        events, problems = read_lines(p)
        errors += problems
        print("  %s: %d events (%s)" % (p, len(events), dict(collections.Counter(e["event"] for e in events))))
    return report(errors, "valid")


def scrape(url, source=None):
    if source:
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        s = socket.create_connection((host.strip("[]"), int(port)), timeout=5, source_address=(source, 0))
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200"):
            raise OSError("answer: %r" % head[:60])
        return body.decode()
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def series_value(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line[len(series) + 1:])
    return None


def cmd_metric(args):
    try:
        text = scrape(args.url, args.source)
    except OSError as e:
        print("scrape failed: %s" % e, file=sys.stderr)
        return 2
    v = series_value(text, args.series)
    if v is None:
        print("absent")
        return 1
    print(int(v) if v == int(v) else v)
    return 0


def interruption_anomalies(events):
    return [a for a in kinds(events, "anomaly") if a.get("kind") == "capture-interrupted"]


def cmd_downup(args):
    events, errors = read_lines(args.events)
    ints = interruption_anomalies(events)
    msgs = [a.get("message", "") for a in ints]
    for m in msgs:
        print("  capture-interrupted: %s" % m)
    # The expected sequence: down (stopped, resumed), gone (stopped reopening, resumed reopened).
    want = [("stopped", lambda m: "went down" in m or "lost its carrier" in m),
            ("resumed", lambda m: "(reopened)" not in m),
            ("stopped", lambda m: "reopening" in m),
            ("resumed", lambda m: "(reopened)" in m)]
    got = [m for m in msgs if "cannot be reopened yet" not in m]
    if len(got) != len(want):
        errors.append("expected %d capture-interrupted anomalies (down, up, gone, reopened), got %d" % (len(want), len(got)))
    else:
        for (word, test), m in zip(want, got):
            if word not in m or not test(m):
                errors.append("unexpected interruption anomaly (wanted '%s'): %s" % (word, m))
        try:
            secs = float(got[1].split("resumed after ", 1)[1].split(" s", 1)[0])
            if secs < 1.5:
                errors.append("the interface was down for 2 s, resumed after %.1f s" % secs)
        except (IndexError, ValueError):
            errors.append("no duration in %s" % got[1])
    # Where each finding sits relative to the interruptions.
    pos = {id(e): i for i, e in enumerate(events)}
    marks = [pos[id(a)] for a in ints]

    def first(pred):
        for i, e in enumerate(events):
            if pred(e):
                return i
        return None
    checks = [
        ("dialback a.lab -> b.lab before the interface went down",
         lambda e: e.get("event") == "dialback" and (e.get("originating"), e.get("receiving")) == ("a.lab", "b.lab"), None, 0),
        ("STANZA-ADDR-4 of the replay after the interface came back up",
         lambda e: e.get("event") == "violation" and e.get("rule") == "STANZA-ADDR-4", 1, 2),
        ("DB-RES-3 of the replay after the interface was re-created",
         lambda e: e.get("event") == "violation" and e.get("rule") == "DB-RES-3", 3, None),
    ]
    for what, pred, after, before in checks:
        i = first(pred)
        if i is None:
            errors.append("missing: " + what)
            continue
        if len(marks) == 4:
            if after is not None and i < marks[after]:
                errors.append("%s came before interruption anomaly %d" % (what, after + 1))
            if before is not None and i > marks[before]:
                errors.append("%s came after interruption anomaly %d" % (what, before + 1))
        print("  found: %s (line %d)" % (what, i + 1))
    stats = kinds(events, "stats")
    if not stats:
        errors.append("no final stats line")
    else:
        s = stats[-1]
        print("  final stats: packets %s, capture_interruptions %s, interfaces_capturing %s, kernel_dropped %s"
              % (s.get("packets"), s.get("capture_interruptions"), s.get("interfaces_capturing"), s.get("kernel_dropped")))
        if s.get("capture_interruptions") != 2:
            errors.append("final stats: capture_interruptions %s, expected 2" % s.get("capture_interruptions"))
        if s.get("interfaces_capturing") != 1:
            errors.append("final stats: interfaces_capturing %s, expected 1" % s.get("interfaces_capturing"))
    if args.rc != 1:
        errors.append("exit status %d, expected 1 (DB-RES-3 is high)" % args.rc)
    return report(errors, "downup")


def cmd_diskfull(args):
    failed, errors = read_lines(args.failed)
    reopened, problems = read_lines(args.reopened)
    errors += problems
    print("  failed file: %d events; reopened file: %d events" % (len(failed), len(reopened)))
    if not reopened or reopened[0].get("event") != "anomaly" or reopened[0].get("kind") != "output-failed":
        errors.append("the reopened file does not start with an output-failed anomaly: %s" % (reopened[:1],))
    else:
        m = reopened[0].get("message", "")
        print("  first line: %s" % m)
        try:
            lost = int(m.split(" ", 1)[0])
            if lost < 1:
                errors.append("output-failed counts %d lost events" % lost)
        except ValueError:
            errors.append("output-failed message does not start with the count: %s" % m)
    if not any(v.get("rule") == "XML-1" for v in kinds(reopened, "violation")):
        errors.append("XML-1 of the replay after the reopening is not in the reopened file")
    if not kinds(reopened, "stats"):
        errors.append("no final stats line in the reopened file")
    with open(args.stderr, encoding="utf-8", errors="replace") as f:
        err = f.read()
    stopped = err.count("output stopped")
    reopened_msgs = err.count("reopened;")
    print("  stderr: %d 'output stopped', %d 'reopened'" % (stopped, reopened_msgs))
    if stopped != 1:
        errors.append("standard error says 'output stopped' %d times, expected once:\n%s" % (stopped, err))
    if reopened_msgs != 1:
        errors.append("standard error says 'reopened' %d times, expected once" % reopened_msgs)
    if args.rc != 1:
        errors.append("exit status %d, expected 1" % args.rc)
    return report(errors, "diskfull")


def cmd_rotation(args):
    errors = []
    all_events = []
    for i, p in enumerate(args.live):
        events, problems = read_lines(p)
        errors += problems
        n_stats_final = len(kinds(events, "stats"))
        print("  %s: %d events" % (p, len(events)))
        if not events:
            errors.append("%s holds no event" % p)
        if i < len(args.live) - 1 and n_stats_final and not args.stats_everywhere:
            errors.append("%s (not the last file) holds a stats line" % p)
        all_events += events
    got = findings(all_events)
    want = {"connections": collections.Counter(), "dialbacks": collections.Counter(), "violations": collections.Counter()}
    for p in args.analyze:
        with open(p, encoding="utf-8") as f:
            doc = json.load(f)
        want["connections"].update((c.get("client"), c.get("server"), c.get("close")) for c in doc.get("connections", []))
        want["dialbacks"].update((d.get("originating"), d.get("receiving"), d.get("outcome")) for d in doc.get("dialbacks", []))
        want["violations"].update((v.get("rule"), v.get("severity")) for v in doc.get("violations", []))
    for k in want:
        print("  %s: live %d, analyze %d" % (k, sum(got[k].values()), sum(want[k].values())))
        if got[k] != want[k]:
            errors.append("%s differ: only live: %s; only analyze: %s" % (k, short(got[k] - want[k]), short(want[k] - got[k])))
    if not kinds(all_events, "stats"):
        errors.append("no final stats line")
    return report(errors, "rotation")


def cmd_same(args):
    base, errors = read_lines(args.base)
    other, problems = read_lines(args.other)
    errors += problems
    a, b = findings(base), findings(other)
    for k in a:
        print("  %s: %d and %d" % (k, sum(a[k].values()), sum(b[k].values())))
        if a[k] != b[k]:
            errors.append("%s differ: only first: %s; only second: %s" % (k, short(a[k] - b[k]), short(b[k] - a[k])))
    sa, sb = kinds(base, "stats"), kinds(other, "stats")
    if not sa or not sb:
        errors.append("a run has no final stats line")
    elif sa[-1].get("packets") != sb[-1].get("packets"):
        errors.append("packets analysed differ: %s and %s" % (sa[-1].get("packets"), sb[-1].get("packets")))
    return report(errors, "same-findings")


def cmd_threads(args):
    import os
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/%d/task" % args.pid):
        try:
            with open("/proc/%d/task/%s/stat" % (args.pid, tid)) as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        out[name] = round(out.get(name, 0) + (int(fields[11]) + int(fields[12])) / tick, 2)
    print(json.dumps(out, sort_keys=True))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("valid")
    v.add_argument("files", nargs="+")
    m = sub.add_parser("metric")
    m.add_argument("url")
    m.add_argument("series")
    m.add_argument("--source")
    d = sub.add_parser("downup")
    d.add_argument("events")
    d.add_argument("--rc", type=int, required=True)
    f = sub.add_parser("diskfull")
    f.add_argument("failed")
    f.add_argument("reopened")
    f.add_argument("--rc", type=int, required=True)
    f.add_argument("--stderr", required=True)
    r = sub.add_parser("rotation")
    r.add_argument("live", nargs="+")
    r.add_argument("--analyze", nargs="+", required=True)
    r.add_argument("--stats-everywhere", action="store_true")
    t = sub.add_parser("threads")
    t.add_argument("pid", type=int)
    s = sub.add_parser("same-findings")
    s.add_argument("base")
    s.add_argument("other")
    args = ap.parse_args()
    try:
        return {"valid": cmd_valid, "metric": cmd_metric, "downup": cmd_downup, "diskfull": cmd_diskfull,
                "rotation": cmd_rotation, "same-findings": cmd_same, "threads": cmd_threads}[args.cmd](args)
    except OSError as e:
        print("sensor-check: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
