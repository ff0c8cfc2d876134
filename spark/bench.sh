#!/usr/bin/env bash
# spark/bench.sh CAPTURE [SHARDS] — the Spark job (local[2]) against one s2scope process on the same
# capture (issue #19). CAPTURE is cut into SHARDS flow-hashed shards with tcpdump ((source port +
# destination port) mod SHARDS, IPv4 and IPv6 without extension headers: the way a cluster's
# workers split flows, which separates the connections of one exchange), then timed:
#   1. s2scope analyze on the whole capture (one process, --threads 1 and 2);
#   2. the Spark job with --captures: the map step runs s2scope analyze --facts on each shard on the
#      executors, then the shuffle by join key and s2scope correlate per partition;
#   3. the Spark job from the facts files the map step would make (the join alone).
# The verdicts (dialbacks by outcome, violations by rule) of the job must equal the whole capture's.
# Environment: S2SCOPE (default .build/release/s2scope), SPARK_PYTHON (a python with pyspark;
# default .build-spark-venv/bin/python), BENCH_WORK (default /var/tmp/s2scope-spark-bench).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CAP="${1:?usage: spark/bench.sh CAPTURE [SHARDS]}"
SHARDS="${2:-4}"
BIN="${S2SCOPE:-$ROOT/.build/release/s2scope}"
PY="${SPARK_PYTHON:-$ROOT/.build-spark-venv/bin/python}"
WORK="${BENCH_WORK:-/var/tmp/s2scope-spark-bench}"
mkdir -p "$WORK"
bytes=$(stat -c %s "$CAP")

secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$WORK/last.err" || { local rc=$?; [ $rc -eq 1 ] || { cat "$WORK/last.err" >&2; exit $rc; }; }; e=$(date +%s.%N); echo "$e - $s" | bc; }

shards=()
for ((k = 0; k < SHARDS; k++)); do
  out="$WORK/shard-$k.pcap"
  [ -s "$out" ] && [ "$out" -nt "$CAP" ] || tcpdump -r "$CAP" -w "$out" \
    "(ip and tcp and ((tcp[0:2] + tcp[2:2]) % $SHARDS = $k)) or (ip6 and ip6[6] = 6 and ((ip6[40:2] + ip6[42:2]) % $SHARDS = $k))" 2>/dev/null
  shards+=("worker$k=$out")
done

t1=$(secs "$BIN" analyze -q --format json -o "$WORK/whole.json" "$CAP")
t2=$(secs "$BIN" analyze -q --threads 2 --format json -o "$WORK/whole-t2.json" "$CAP")
tspark=$(secs "$PY" "$ROOT/spark/s2scope_spark.py" --master 'local[2]' --s2scope "$BIN" --partitions 2 --captures -o "$WORK/spark.json" "${shards[@]}")
facts=()
for ((k = 0; k < SHARDS; k++)); do
  "$BIN" analyze -q --facts "$WORK/shard-$k.facts" --sensor "worker$k" -o /dev/null "$WORK/shard-$k.pcap" || [ $? -eq 1 ]
  facts+=("$WORK/shard-$k.facts")
done
factbytes=$(cat "${facts[@]}" | wc -c)
tjoin=$(secs "$PY" "$ROOT/spark/s2scope_spark.py" --master 'local[2]' --s2scope "$BIN" --partitions 2 -o "$WORK/spark-facts.json" "${facts[@]}")
tempty=$(secs "$PY" -c "from pyspark import SparkContext; sc = SparkContext('local[2]', 'empty'); sc.parallelize([1], 1).count(); sc.stop()")

verdicts() {
  python3 -c '
import json, sys, collections
r = json.load(open(sys.argv[1]))
d = collections.Counter(x["outcome"] for x in r["dialbacks"])
v = collections.Counter(x["rule"] for x in r["violations"])
print(json.dumps({"connections": len(r["connections"]), "dialbacks": dict(sorted(d.items())), "violations": dict(sorted(v.items()))}, sort_keys=True))' "$1"
}
same=FAIL
[ "$(verdicts "$WORK/whole.json")" = "$(verdicts "$WORK/spark.json")" ] && [ "$(verdicts "$WORK/whole.json")" = "$(verdicts "$WORK/spark-facts.json")" ] && same=PASS

mbs() { echo "scale=1; $bytes / 1048576 / $1" | bc; }
echo "capture: $CAP ($((bytes / 1048576)) MiB), $SHARDS flow-hashed shards; facts: $((factbytes / 1048576)) MiB"
echo
echo "| run | seconds | MiB/s of capture |"
echo "|---|---|---|"
echo "| s2scope analyze, one process, --threads 1 | $t1 | $(mbs "$t1") |"
echo "| s2scope analyze, one process, --threads 2 | $t2 | $(mbs "$t2") |"
echo "| Spark job local[2], captures (map step analyze --facts, join, correlate) | $tspark | $(mbs "$tspark") |"
echo "| Spark job local[2], from facts files (join and correlate only) | $tjoin | $(mbs "$tjoin") |"
echo "| (Spark start and stop with an empty job, included in both) | $tempty | |"
echo
echo "verdicts of the Spark job equal the whole capture's: $same"
verdicts "$WORK/whole.json"
[ "$same" = PASS ]
