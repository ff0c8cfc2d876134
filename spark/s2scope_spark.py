#!/usr/bin/env python3
"""Correlation of many sensors' facts on Apache Spark (issue #19, docs/FACTS.md).

    spark-submit spark/s2scope_spark.py [--s2scope PATH] [--partitions N] [-o REPORT.json]
                 [--captures] [--max-skew S] [--correlate-arg ARG ...] INPUT...

INPUT is a facts file (`s2scope analyze --facts`), or with --captures a capture
(`SENSOR=PATH`, or PATH whose sensor is the file name without extension): the map step then
runs `s2scope analyze --facts -` on the executors, once per sensor over its captures in the
order given (rotated files of one sensor: one connection stays one).

Spark only distributes and shuffles; the Swift code stays the one judge:
  1. each facts file is cut into one bundle per connection (its lines, in file order) and one
     bundle of the file's own lines (clock start, counters, anomalies of no connection);
  2. each connection carries join keys: the receiving server's stream id with the domain
     pair (on the db:result side the acceptor's header id and the result's from/to; on the
     db:verify side its id and to/from), the dialback key, every stream id its headers
     carry, and the domain pair of its streams; connected components over shared keys put a
     whole exchange (and every copy of a connection several sensors saw) in one component;
  3. components are hash-partitioned; each partition is written as a facts stream (for every
     source file present: its header, its clock start, its lines in order) and piped through
     `s2scope correlate --format json -` (mapPartitions + subprocess);
  4. the partitions' reports are merged into one report (schema s2scope/1): inputs by name,
     connections renumbered in order of first packet, dialbacks renumbered, findings sorted.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

STREAMS = "http://etherx.jabber.org/streams"
DIALBACK = "jabber:server:dialback"


def s2scope_binary(explicit=None):
    if explicit:
        return explicit
    if os.environ.get("S2SCOPE"):
        return os.environ["S2SCOPE"]
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "..", ".build", "release", "s2scope"), os.path.join(here, "..", ".build", "debug", "s2scope")):
        if os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return "s2scope"


# ---- the map step: captures → facts -------------------------------------------------------

def capture_to_facts(item, binary, extra):
    """(sensor, capture path) → (source name, facts text), run on an executor."""
    sensor, paths = item
    paths = [paths] if isinstance(paths, str) else list(paths)
    r = subprocess.run([binary, "analyze", "-q", "--facts", "-", "--sensor", sensor] + extra + paths,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode not in (0, 1):
        raise RuntimeError("s2scope analyze %s: %s" % (" ".join(paths), r.stderr.decode(errors="replace")))
    return ("%s:%s" % (sensor, paths[0]), r.stdout.decode())


# ---- join keys ------------------------------------------------------------------------------

def domain(s):
    s = (s or "").strip().lower()
    return s[:-1] if s.endswith(".") and len(s) > 1 else s


def parse_element(fact):
    """The element of an event fact, parsed with its inherited bindings (keys only: the judge
    re-parses with expat in Swift)."""
    decls = []
    for b in fact.get("ns") or []:
        p = b.get("prefix")
        decls.append(("xmlns:%s" % p if p else "xmlns", b.get("uri", "")))
    wrapper = "<w " + " ".join("%s=%s" % (k, json.dumps(v)) for k, v in decls) + ">"
    try:
        root = ET.fromstring(wrapper + fact["xml"] + "</w>")
    except ET.ParseError:
        return None
    return root[0] if len(root) else None


def header_attributes(fact):
    m = {}
    for mm in re.finditer(r"""\s([A-Za-z_:][-\w.:]*)=(?:'([^']*)'|"([^"]*)")""", fact.get("xml", "")):
        name = mm.group(1)
        val = mm.group(2) if mm.group(2) is not None else mm.group(3)
        if not name.startswith("xmlns"):
            m[name] = val
    return m


def connection_keys(lines):
    """Join keys of one connection from its facts."""
    keys = set()
    acceptor_id = None
    pairs = set()
    for f in lines:
        if f.get("t") == "open":
            # every copy of one TCP connection (several sensors saw it) in one place
            keys.add(("tcp", f.get("client"), f.get("server")))
        if f.get("t") != "event":
            continue
        kind = f.get("kind")
        if kind == "header":
            a = header_attributes(f)
            sid = a.get("id")
            pair = tuple(sorted((domain(a.get("from")), domain(a.get("to")))))
            if pair != ("", ""):
                pairs.add(pair)
            if sid:
                keys.add(("stream", sid, pair))
                if f.get("d") == 1:
                    acceptor_id = sid
        elif kind == "element":
            el = parse_element(f)
            if el is None or not el.tag.startswith("{%s}" % DIALBACK):
                continue
            local = el.tag.split("}", 1)[1]
            frm, to = domain(el.get("from")), domain(el.get("to"))
            text = (el.text or "").strip()
            if local == "result":
                # receiving server's stream id (the acceptor's header) with the pair, both ways
                # round: a reply on the reverse pair joins the same exchange.
                for sid in ([acceptor_id] if acceptor_id else []):
                    keys.add(("exchange", sid, tuple(sorted((frm, to)))))
                if text:
                    keys.add(("key", text))
            elif local == "verify":
                sid = el.get("id")
                if sid:
                    keys.add(("exchange", sid, tuple(sorted((frm, to)))))
                if text:
                    keys.add(("key", text))
    for p in pairs:
        keys.add(("pair", p))
    return keys


# ---- cutting a facts file into bundles ------------------------------------------------------

def split_facts(item):
    """(source, facts text) → bundles: ("conn", source, c, keys, [(line number, line)]) per
    connection, and ("file", source, None, [], [...]) for the file's own lines."""
    source, text = item
    conns = {}
    own = []
    header = None
    start = None
    # a stream may hold several files: each header starts a new source
    part = 0
    src = source
    out = []

    def flush():
        for c, ls in conns.items():
            out.append(("conn", src, c, sorted(connection_keys([json.loads(l) for _, l in ls]), key=repr), ls, header, start))
        out.append(("file", src, None, [], own, header, start))

    for n, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        f = json.loads(line)
        t = f.get("t")
        if t == "header":
            if header is not None:
                flush()
                conns, own, part = {}, [], part + 1
                src = "%s#%d" % (source, part)
            header, start = line, None
            continue
        if t == "time" and start is None:
            start = line
            continue
        c = f.get("c")
        if c is not None and t != "end":
            conns.setdefault(c, []).append((n, line))
        else:
            own.append((n, line))
    if header is not None:
        flush()
    return out


def components(nodes):
    """Union-find over shared keys: node id → component id."""
    parent = {}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    owner = {}
    for node, keys in nodes:
        parent.setdefault(node, node)
        for k in keys:
            if k in owner:
                union(node, owner[k])
            else:
                owner[k] = node
    return {node: find(node) for node, _ in nodes}


def partition_stream(bundles):
    """A partition's bundles → one facts stream: per source, header, clock start, lines in order."""
    by_source = {}
    for b in bundles:
        kind, src, c, keys, lines, header, start = b
        s = by_source.setdefault(src, {"header": header, "start": start, "lines": []})
        s["lines"].extend(lines)
    text = []
    for src in sorted(by_source):
        s = by_source[src]
        text.append(s["header"])
        if s["start"]:
            text.append(s["start"])
        for _, l in sorted(s["lines"]):
            text.append(l)
    return "\n".join(text) + "\n"


def correlate_partition(it, binary, extra):
    bundles = [b for _, b in it]
    if not bundles:
        return
    stream = partition_stream(bundles)
    r = subprocess.run([binary, "correlate", "--format", "json"] + extra + ["-"], input=stream.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode not in (0, 1):
        raise RuntimeError("s2scope correlate: %s" % r.stderr.decode(errors="replace"))
    yield json.loads(r.stdout.decode())


# ---- merging the partitions' reports ----------------------------------------------------------

SEVERITIES = ["critical", "high", "medium", "low", "info"]


def merge_reports(reports):
    inputs, input_index = [], {}
    for r in reports:
        for i in r.get("inputs", []):
            if i["path"] not in input_index:
                input_index[i["path"]] = len(inputs)
                inputs.append(i)
    conns = []
    for pi, r in enumerate(reports):
        paths = [i["path"] for i in r.get("inputs", [])]
        for c in r.get("connections", []):
            c = dict(c)
            c["_old"] = (pi, c["id"])
            c["input"] = input_index[paths[c["input"]]]
            conns.append(c)
    conns.sort(key=lambda c: (c.get("start") or "", c["input"], c.get("first_packet") or 0))
    cmap = {}
    for n, c in enumerate(conns):
        cmap[c.pop("_old")] = "C%d" % (n + 1)
        c["id"] = "C%d" % (n + 1)

    def remap_conn(pi, cid):
        if cid is None:
            return None
        return cmap.get((pi, cid), cid)

    violations, anomalies, not_judged, dialbacks = [], [], [], []
    for pi, r in enumerate(reports):
        paths = [i["path"] for i in r.get("inputs", [])]

        def remap_input(x):
            if x.get("input") is not None:
                x["input"] = input_index[paths[x["input"]]]
        for v in r.get("violations", []):
            v = dict(v)
            v["connection"] = remap_conn(pi, v.get("connection"))
            remap_input(v)
            violations.append(v)
        for a in r.get("anomalies", []):
            a = dict(a)
            a["connection"] = remap_conn(pi, a.get("connection"))
            remap_input(a)
            anomalies.append(a)
        for nj in r.get("not_judged", []):
            nj = dict(nj)
            nj["connection"] = remap_conn(pi, nj.get("connection"))
            remap_input(nj)
            not_judged.append(nj)
        for d in r.get("dialbacks", []):
            d = dict(d)
            for k in ("result_connection", "verify_connection"):
                d[k] = remap_conn(pi, d.get(k))
            dialbacks.append(d)
    violations.sort(key=lambda v: (v.get("time") or "", v.get("input") or 0, v.get("packet") or 0, v["rule"]))
    anomalies.sort(key=lambda a: (a.get("time") or "", a.get("input") or 0, a.get("packet") or 0))
    not_judged.sort(key=lambda n: (n.get("input") or 0, n.get("packet") or 0, n.get("rule")))
    dialbacks.sort(key=lambda d: (int(d["result_connection"][1:]) if d.get("result_connection") else 0, d.get("result_packet") or 0))
    for n, d in enumerate(dialbacks):
        d["id"] = "D%d" % (n + 1)
    summary = {}
    for r in reports:
        for k, v in (r.get("summary") or {}).items():
            if isinstance(v, bool):
                summary[k] = summary.get(k, False) or v
            elif isinstance(v, (int, float)):
                summary[k] = summary.get(k, 0) + v
            elif isinstance(v, dict):
                d = summary.setdefault(k, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
            else:
                summary.setdefault(k, v)
    summary["violations"] = len(violations)
    summary["violations_by_severity"] = {s: sum(1 for v in violations if v["severity"] == s) for s in SEVERITIES}
    summary["dialbacks"] = len(dialbacks)
    base = reports[0] if reports else {"schema": "s2scope/1", "tool": {"name": "s2scope"}}
    return {"schema": base.get("schema"), "tool": base.get("tool"), "inputs": inputs, "summary": summary,
            "connections": conns, "dialbacks": dialbacks, "violations": violations, "anomalies": anomalies,
            "not_judged": not_judged}


def read_text(path):
    with open(path) as f:
        return f.read()


# ---- the job ------------------------------------------------------------------------------

def run(sc, inputs, captures=False, binary=None, partitions=None, analyze_args=(), correlate_args=()):
    """The job: inputs (facts files, or captures as (sensor, path)) → one merged report."""
    binary = s2scope_binary(binary)
    if __name__ != "__main__" and not getattr(sc, "_s2scope_module_shipped", False):
        # Imported (tests, another driver): the executors import this module by name.
        sc.addPyFile(os.path.abspath(__file__))
        sc._s2scope_module_shipped = True
    analyze_args, correlate_args = list(analyze_args), list(correlate_args)
    n = partitions or sc.defaultParallelism
    if captures:
        facts = sc.parallelize(inputs, max(1, min(len(inputs), n))).map(lambda it: capture_to_facts(it, binary, analyze_args))
    else:
        # Read where the task runs: on a cluster the paths name a file system every executor sees.
        facts = sc.parallelize(list(inputs), max(1, min(len(inputs), n))).map(lambda p: (p, read_text(p)))
    bundles = facts.flatMap(split_facts).zipWithUniqueId().map(lambda x: (x[1], x[0])).cache()
    # The key graph is small (keys per connection): its components are found on the driver.
    nodes = bundles.map(lambda x: (x[0], x[1][3])).collect()
    # A file's own bundle joins nothing; every connection bundle joins by its keys.
    comp = sc.broadcast(components([(node, [tuple(k) if isinstance(k, list) else k for k in keys]) for node, keys in nodes]))
    keyed = bundles.map(lambda x: (comp.value[x[0]], x[1])).partitionBy(n)
    reports = keyed.mapPartitions(lambda it: correlate_partition(it, binary, correlate_args)).collect()
    bundles.unpersist()
    return merge_reports(reports)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--captures", action="store_true", help="inputs are captures (SENSOR=PATH or PATH): the map step runs s2scope analyze --facts")
    ap.add_argument("--s2scope", help="the s2scope binary (default: $S2SCOPE, then the repository's build)")
    ap.add_argument("--partitions", type=int, help="partitions of the shuffle (default: Spark's parallelism)")
    ap.add_argument("--master", help="Spark master when not run by spark-submit (e.g. local[2])")
    ap.add_argument("--max-skew", help="passed to s2scope correlate")
    ap.add_argument("--analyze-arg", action="append", default=[], help="extra argument of s2scope analyze (repeatable)")
    ap.add_argument("--correlate-arg", action="append", default=[], help="extra argument of s2scope correlate (repeatable)")
    ap.add_argument("-o", "--output", help="write the merged JSON report here (default: standard output)")
    a = ap.parse_args(argv)
    from pyspark import SparkConf, SparkContext
    conf = SparkConf().setAppName("s2scope-correlate")
    if a.master:
        conf = conf.setMaster(a.master)
    sc = SparkContext.getOrCreate(conf)
    sc.setLogLevel("WARN")
    inputs = a.inputs
    if a.captures:
        # One analyze run per sensor, its files in the order given: a connection that spans two
        # rotated files of one sensor stays one connection.
        grouped = {}
        for i in inputs:
            s, p = i.split("=", 1) if "=" in i else (os.path.splitext(os.path.basename(i))[0], i)
            grouped.setdefault(s, []).append(os.path.abspath(p))
        inputs = sorted(grouped.items())
    corr = list(a.correlate_arg) + (["--max-skew", a.max_skew] if a.max_skew else [])
    report = run(sc, inputs, captures=a.captures, binary=a.s2scope and os.path.abspath(a.s2scope), partitions=a.partitions,
                 analyze_args=a.analyze_arg, correlate_args=corr)
    text = json.dumps(report, indent=2) + "\n"
    if a.output:
        with open(a.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    sc.stop()
    bad = [v for v in report["violations"] if v["severity"] in ("critical", "high")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
