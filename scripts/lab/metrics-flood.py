#!/usr/bin/env python3
"""Idle and slow clients against a metrics port (Python 3 standard library only).

    metrics-flood.py HOST PORT [--connections 1000] [--sources 127.0.0.1-50] [--seconds 30]
                     [--reconnect-delay 1.0] [--scrape-source 127.0.0.200] [--ready FILE]

Keeps --connections connections open to HOST:PORT, spread over the --sources addresses: half
idle (connect, send nothing), half slow (a request line, then one header byte per second, never
finishing). A connection the server closes is opened again after --reconnect-delay seconds, so
the pressure stays at --connections for --seconds. With --scrape-source, a well-behaved client
from that address scrapes /metrics once a second meanwhile. --ready FILE is written once every
connection has been attempted. At the end (or on SIGTERM) one JSON object goes to standard output: attempts,
connections established, the most open at once, closed by the server, connect errors, scrapes
ok/failed, its own CPU seconds.
"""
import argparse
import errno
import json
import resource
import selectors
import signal
import socket
import threading
import time


def source_range(spec):
    """'127.0.0.1-50' -> 127.0.0.1 ... 127.0.0.50; 'a,b' -> a, b."""
    if "-" in spec:
        base, last = spec.rsplit("-", 1)
        prefix, first = base.rsplit(".", 1)
        return ["%s.%d" % (prefix, i) for i in range(int(first), int(last) + 1)]
    return spec.split(",")


def scraper(host, port, source, stop, counts):
    while not stop.is_set():
        t = time.time()
        try:
            s = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            counts["scrapes_ok" if data.startswith(b"HTTP/1.0 200") and b"s2scope_packets_total" in data else "scrapes_failed"] += 1
        except OSError:
            counts["scrapes_failed"] += 1
        stop.wait(max(0.0, 1.0 - (time.time() - t)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--sources", default="127.0.0.1")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--reconnect-delay", type=float, default=1.0)
    ap.add_argument("--scrape-source")
    ap.add_argument("--ready")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(need, soft), hard), hard))
    sources = source_range(args.sources)
    sel = selectors.DefaultSelector()
    counts = {"attempts": 0, "established": 0, "closed_by_server": 0, "connect_errors": 0,
              "max_open": 0, "scrapes_ok": 0, "scrapes_failed": 0}
    # slot -> (socket, state, next byte time); state: connecting, idle, slow
    slots = {}
    due = {i: 0.0 for i in range(args.connections)}  # slot -> when to (re)connect
    open_now = 0

    def connect(i, now):
        nonlocal open_now
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((sources[i % len(sources)], 0))
            rc = s.connect_ex((args.host, args.port))
        except OSError:
            rc = -1
        counts["attempts"] += 1
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            counts["connect_errors"] += 1
            due[i] = now + args.reconnect_delay
            return
        slots[i] = [s, "connecting", now]
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, i)

    def drop(i, now, by_server):
        nonlocal open_now
        s, state, _ = slots.pop(i)
        sel.unregister(s)
        s.close()
        if state != "connecting":
            open_now -= 1
        if by_server:
            counts["closed_by_server"] += 1
        due[i] = now + args.reconnect_delay

    stop = threading.Event()
    scrape_thread = None
    if args.scrape_source:
        scrape_thread = threading.Thread(target=scraper, args=(args.host, args.port, args.scrape_source, stop, counts), daemon=True)
        scrape_thread.start()
    # SIGTERM ends the flood early, with its report.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    start = time.time()
    ready_written = False
    while time.time() - start < args.seconds and not stop.is_set():
        now = time.time()
        for i in [i for i, t in due.items() if t <= now]:
            del due[i]
            connect(i, now)
        if not ready_written and counts["attempts"] >= args.connections and args.ready:
            with open(args.ready, "w") as f:
                f.write("ready\n")
            ready_written = True
        for key, mask in sel.select(timeout=0.05):
            i = key.data
            s, state, _ = slots[i]
            if state == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    counts["connect_errors"] += 1
                    drop(i, now, False)
                    continue
                counts["established"] += 1
                open_now += 1
                counts["max_open"] = max(counts["max_open"], open_now)
                if i % 2:
                    try:
                        s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    except OSError:
                        pass
                    slots[i] = [s, "slow", now + 1]
                else:
                    slots[i] = [s, "idle", 0]
                sel.modify(s, selectors.EVENT_READ, i)
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                drop(i, now, True)
        now = time.time()
        for i, (s, state, t) in list(slots.items()):
            if state == "slow" and t <= now:
                try:
                    s.send(b"a")
                except OSError:
                    drop(i, now, True)
                    continue
                slots[i][2] = now + 1
    stop.set()
    if scrape_thread:
        scrape_thread.join(timeout=6)
    counts["open_at_end"] = open_now
    counts["seconds"] = round(time.time() - start, 1)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    counts["cpu_seconds"] = round(ru.ru_utime + ru.ru_stime, 2)
    for s, _, _ in slots.values():
        s.close()
    print(json.dumps(counts, sort_keys=True))


if __name__ == "__main__":
    main()
