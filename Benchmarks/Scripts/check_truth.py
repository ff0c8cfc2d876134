#!/usr/bin/env python3
"""Checks an s2scope JSON report (schema s2scope/1) against s2scope-gen's truth file.

    check_truth.py REPORT.json TRUTH.json

PASS when
  - every injected rule fired at least as often as injected (violations + suppressed_violations),
  - no HIGH or CRITICAL finding belongs to a rule that was not injected,
  - the dialback exchanges match the truth: same total, same count per outcome, none pending,
  - the input was read completely (not truncated, same packet count).
Prints a small table and PASS/FAIL; exit status 0 on PASS, 1 on FAIL, 2 on unusable input.
"""
import json
import sys
from collections import Counter


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1]) as f:
            report = json.load(f)
        with open(sys.argv[2]) as f:
            truth = json.load(f)
    except (OSError, ValueError) as e:
        print(f"check: cannot read input: {e}", file=sys.stderr)
        return 2

    failures = []
    summary = report.get("summary", {})
    violations = report.get("violations", [])
    suppressed = summary.get("suppressed_violations", {})
    found = Counter(v["rule"] for v in violations)
    for rule, n in suppressed.items():
        found[rule] += n

    expected = truth["expected_violations"]
    print(f"{'rule':<16} {'injected':>8} {'found':>8}  verdict")
    for rule, n in sorted(expected.items()):
        ok = found.get(rule, 0) >= n
        print(f"{rule:<16} {n:>8} {found.get(rule, 0):>8}  {'ok' if ok else 'MISSED'}")
        if not ok:
            failures.append(f"{rule}: injected {n}, found {found.get(rule, 0)}")

    bad = set(truth.get("fail_on_other_severities", ["high", "critical"]))
    spurious = Counter(v["rule"] for v in violations if v["severity"] in bad and v["rule"] not in expected)
    for rule, n in sorted(spurious.items()):
        example = next(v for v in violations if v["rule"] == rule and v["severity"] in bad)
        failures.append(f"spurious {rule} x{n} (e.g. {example['connection']} packet {example['packet']}: {example['message']})")
    others = Counter((v["rule"], v["severity"]) for v in violations if v["rule"] not in expected and v["severity"] not in bad)
    if others:
        print("other findings (not failures): " + ", ".join(f"{r} {s} x{n}" for (r, s), n in sorted(others.items())))

    dialbacks = report.get("dialbacks", [])
    outcomes = Counter(x.get("outcome") for x in dialbacks)
    td = truth["dialbacks"]
    print(f"dialbacks: truth {td['total']} (valid {td['valid']}, invalid {td['invalid']}); "
          f"report {summary.get('dialbacks')} (valid {outcomes.get('valid', 0)}, invalid {outcomes.get('invalid', 0)}, "
          f"pending {outcomes.get('pending', 0)}, other {sum(n for k, n in outcomes.items() if k not in ('valid', 'invalid', 'pending'))})")
    if summary.get("dialbacks") != td["total"]:
        failures.append(f"dialbacks: truth {td['total']}, report {summary.get('dialbacks')}")
    for k in ("valid", "invalid"):
        if outcomes.get(k, 0) != td[k]:
            failures.append(f"dialbacks {k}: truth {td[k]}, report {outcomes.get(k, 0)}")
    if outcomes.get("pending", 0):
        failures.append(f"{outcomes['pending']} dialbacks pending")

    verified = sum(1 for x in dialbacks if x.get("verify_connection"))
    if verified != td["total"]:
        failures.append(f"dialbacks matched to their db:verify: {verified} of {td['total']}")

    inputs = report.get("inputs", [])
    if not inputs or inputs[0].get("truncated"):
        failures.append("input truncated or missing")
    elif inputs[0].get("packets") != truth["packets"]:
        failures.append(f"packets: truth {truth['packets']}, report {inputs[0].get('packets')}")

    streams = summary.get("xmpp_streams")
    print(f"xmpp streams: truth {truth['xmpp_streams']}, report {streams}; "
          f"anomalies: {summary.get('anomalies_by_kind', {})}")
    if streams != truth["xmpp_streams"]:
        failures.append(f"xmpp streams: truth {truth['xmpp_streams']}, report {streams}")

    if failures:
        print("FAIL")
        for f in failures:
            print("  - " + f)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
