#!/usr/bin/env python3
"""The Spark job in local mode against `s2scope analyze` on the whole capture (issue #19).

Every lab capture (fixtures/lab, a rotated set as one capture of three files) and the
three-server capture (fixtures/multisensor) is cut into one capture per host with tcpdump, as a
sensor on each host would have recorded it. The Spark job (local[2]) runs `s2scope analyze
--facts` on each sensor's capture as its map step, joins by connected components over the join
keys, pipes each partition through `s2scope correlate`, and merges: its violations, dialback
exchanges and outcomes must equal those of `s2scope analyze` on the whole capture. The
three-server capture is also run with sensors on two hosts only (the verify leg seen only by
the third sensor) and from facts files (the job's other input).

    S2SCOPE=.build/debug/s2scope python3 spark/test_spark.py   (needs pyspark and Java)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import s2scope_spark  # noqa: E402

BINARY = s2scope_spark.s2scope_binary()
LAB = os.path.join(ROOT, "fixtures", "lab")
MULTI = os.path.join(ROOT, "fixtures", "multisensor")


def captures():
    out = []
    for name in sorted(os.listdir(LAB)):
        if not name.endswith(".truth.json") or name.startswith("rotated-"):
            continue
        scenario = name[: -len(".truth.json")]
        with open(os.path.join(LAB, name)) as f:
            truth = json.load(f)
        files = truth.get("captures") or [truth.get("capture") or scenario + ".pcap"]
        out.append((scenario, [os.path.join(LAB, f) for f in files], []))
    opts = []
    with open(os.path.join(MULTI, "three-server.txt")) as f:
        for line in f:
            if line.startswith("#!host "):
                opts += ["--host", line.split(" ", 1)[1].strip()]
    out.append(("three-server", [os.path.join(MULTI, "three-server.pcap")], opts))
    return out


def verdicts(r):
    """What a report concludes, named by what it is, not by frame or connection numbers."""
    endpoints = {c["id"]: "%s>%s" % (c["client"], c["server"]) for c in r.get("connections", [])}

    def conn(i):
        return endpoints.get(i, "-") if i else "-"

    def scrub(s):
        s = re.sub(r"\bC[0-9]+\b", "C#", s or "")
        s = re.sub(r"\bframe [0-9]+", "frame #", s)
        return re.sub(r"\bpacket [0-9]+", "packet #", s)
    out = []
    for v in r.get("violations", []):
        out.append("violation %s %s %s %s %s %s %s %s" % (v["rule"], v["severity"], v["direction"], v["actor"],
                                                        conn(v.get("connection")), v.get("time"), scrub(v.get("message")), scrub(v.get("evidence"))))
    for d in r.get("dialbacks", []):
        out.append("dialback %s>%s id=%s outcome=%s verify=%s result-on=%s verify-on=%s %s" % (
            d.get("originating"), d.get("receiving"), d.get("stream_id"), d.get("outcome"), d.get("verify_type"),
            conn(d.get("result_connection")), conn(d.get("verify_connection")), d.get("seconds_to_outcome")))
    return sorted(out)


def analyze_whole(files, opts):
    r = subprocess.run([BINARY, "analyze", "-q", "--format", "json"] + opts + files, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode in (0, 1), r.stderr.decode()
    return json.loads(r.stdout)


def hosts(report):
    hs = set()
    for c in report.get("connections", []):
        for k in ("client", "server"):
            hs.add(c[k].rsplit(":", 1)[0])
    return sorted(hs)


class SparkJobTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from pyspark import SparkConf, SparkContext
        cls.sc = SparkContext.getOrCreate(SparkConf().setMaster("local[2]").setAppName("s2scope-spark-test").set("spark.ui.showConsoleProgress", "false").set("spark.ui.enabled", "false"))
        cls.sc.setLogLevel("ERROR")
        cls.tmp = tempfile.mkdtemp(prefix="s2scope-spark-")

    @classmethod
    def tearDownClass(cls):
        cls.sc.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def split(self, scenario, files, host):
        out = []
        for i, f in enumerate(files):
            p = os.path.join(self.tmp, "%s-%s-%d.pcap" % (scenario, host, i))
            r = subprocess.run(["tcpdump", "-r", f, "-w", p, "host", host], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            out.append(p)
        return out

    def test_every_capture_split_per_host_gives_the_whole_verdicts(self):
        for scenario, files, opts in captures():
            with self.subTest(scenario=scenario):
                whole = analyze_whole(files, opts)
                sensors = [("sensor-" + h, self.split(scenario, files, h)) for h in hosts(whole)]
                merged = s2scope_spark.run(self.sc, sensors, captures=True, binary=BINARY, partitions=2,
                                           analyze_args=opts, correlate_args=opts)
                self.assertEqual(verdicts(merged), verdicts(whole), scenario)
                self.assertEqual(len(merged["connections"]), len(whole["connections"]), scenario)
                # evidence names the sensor and the file
                self.assertTrue(all(i["path"].startswith("sensor-") for i in merged["inputs"]))

    def test_verify_leg_seen_only_by_the_third_sensor_from_facts_files(self):
        _, files, opts = captures()[-1]
        whole = analyze_whole(files, opts)
        self.assertTrue(any(v["rule"] == "DB-CORR-6" for v in whole["violations"]))
        facts = []
        for h in ("10.53.0.11", "10.53.0.12"):
            part = self.split("three", files, h)
            f = os.path.join(self.tmp, "node-%s.facts" % h)
            r = subprocess.run([BINARY, "analyze", "-q", "--facts", f, "--sensor", "node-" + h, "-o", "/dev/null"] + opts + part,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.assertIn(r.returncode, (0, 1), r.stderr.decode())
            facts.append(f)
        merged = s2scope_spark.run(self.sc, facts, binary=BINARY, partitions=2, correlate_args=opts)
        self.assertEqual(verdicts(merged), verdicts(whole))
        corr6 = [v for v in merged["violations"] if v["rule"] == "DB-CORR-6"]
        self.assertEqual(len(corr6), 1)
        self.assertTrue(merged["inputs"][corr6[0]["input"]]["path"].startswith("node-10.53.0.11/"))

    def test_join_keys_put_an_exchange_in_one_component(self):
        _, files, opts = captures()[-1]
        f = os.path.join(self.tmp, "all.facts")
        r = subprocess.run([BINARY, "analyze", "-q", "--facts", f, "--sensor", "all", "-o", "/dev/null"] + opts + files,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertIn(r.returncode, (0, 1), r.stderr.decode())
        bundles = [b for b in s2scope_spark.split_facts(("all", s2scope_spark.read_text(f))) if b[0] == "conn"]
        comp = s2scope_spark.components([(i, b[3]) for i, b in enumerate(bundles)])
        groups = {}
        for i, b in enumerate(bundles):
            groups.setdefault(comp[i], []).append(b[2])
        # connections 1 and 2 (result leg, verify leg) form one exchange, 3 and 4 the other
        self.assertEqual(sorted(sorted(g) for g in groups.values()), [[1, 2], [3, 4]])


if __name__ == "__main__":
    unittest.main(verbosity=2)
