#!/usr/bin/env python3
"""Copies a growing NSS key log to another file, each line DELAY seconds after it appeared.

    keylog-delay.py SOURCE DEST [--delay 1.5]

Used by scripts/lab/tls-servers.sh to give `s2scope live` a key log whose secrets arrive after
the TLS records they protect (as from a server that writes its key log late, or a sensor that
reads it over a slow share), so that the live run must hold those records and decrypt them
when the lines come. SOURCE may not exist yet. DEST is created with mode 0600. Runs until
SIGTERM/SIGINT (lines not yet due are dropped then).
"""
import argparse
import os
import signal
import sys
import time

stop = False


def on_signal(_sig, _frame):
    global stop
    stop = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("dest")
    ap.add_argument("--delay", type=float, default=1.5)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    fd = os.open(args.dest, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    offset, partial, due = 0, b"", []
    while not stop:
        try:
            with open(args.source, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        offset += len(data)
        partial += data
        *lines, partial = partial.split(b"\n")
        now = time.monotonic()
        due += [(now + args.delay, line + b"\n") for line in lines]
        while due and due[0][0] <= now:
            os.write(fd, due.pop(0)[1])
        time.sleep(0.05)
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
