#!/usr/bin/env python3
"""Drive a page in headless Chromium over the DevTools protocol and report what it shows.

    html-drive.py CHROMIUM URL STEPS_JSON

STEPS_JSON is a JSON list of steps, run in order after the page loaded:
  {"click": "CSS selector"}   scroll the element into view and click its centre with the mouse
                              (Input.dispatchMouseEvent: the browser's own input path, so the
                              page's listeners see a real click)
  {"eval": "JS expression"}   evaluate it in the page; its value (JSON) is the step's result
  {"screenshot": "out.png", "width": 1400, "height": 2000}
                              a PNG of the top of the page at that size
Prints one JSON list: one {"step": i, "result": ...} per step. Exit 1 on a failed step (an
element not found, an exception in the page), 2 on a bad invocation.

The browser is started with --remote-debugging-pipe (file descriptors 3 and 4): no network port
is opened. Only the standard library is used.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import shutil
import signal


class Browser:
    def __init__(self, chromium, width=1400, height=2000):
        self.profile = tempfile.mkdtemp(prefix="s2scope-cdp-")
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def wire():
            # Move both ends out of the way first, then onto 3 and 4 (they may collide).
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            a2, b2 = os.dup2(a, 100), os.dup2(b, 101)
            os.dup2(a2, 3)
            os.dup2(b2, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-pipe",
             "--user-data-dir=" + self.profile, "--window-size=%d,%d" % (width, height), "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)
        self.next_id = 0
        self.buffer = b""
        self.events = []
        self.session = None

    def _read_message(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_child, 1 << 16)
            if not chunk:
                raise RuntimeError("the browser closed the DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read_message()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"].get("message")))
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method):
        for i, m in enumerate(self.events):
            if m.get("method") == method:
                del self.events[i]
                return m
        while True:
            m = self._read_message()
            if m.get("method") == method:
                return m
            self.events.append(m)

    def open(self, url):
        targets = self.call("Target.getTargets", session=False)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError("exception in the page: %s" % json.dumps(r["exceptionDetails"])[:500])
        return r.get("result", {}).get("value")

    def click(self, selector):
        where = self.evaluate(
            "(function () { var e = document.querySelector(%s); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); var r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()" % json.dumps(selector))
        if where is None:
            raise RuntimeError("no element matches %s" % selector)
        x, y = where
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        self.call("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x, "y": y, "button": "left", "clickCount": 1})
        self.call("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x, "y": y, "button": "left", "clickCount": 1})
        return [x, y]

    def screenshot(self, path, width, height):
        self.evaluate("window.scrollTo(0, 0)")
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return os.path.getsize(path)

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    chromium, url, steps = argv[1], argv[2], json.loads(argv[3])
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("html-drive: 120 s passed")))
    signal.alarm(120)
    b = Browser(chromium)
    out, status = [], 0
    try:
        b.open(url)
        for i, s in enumerate(steps):
            if "click" in s:
                out.append({"step": i, "result": b.click(s["click"])})
            elif "eval" in s:
                out.append({"step": i, "result": b.evaluate(s["eval"])})
            elif "screenshot" in s:
                out.append({"step": i, "result": b.screenshot(s["screenshot"], s.get("width", 1400), s.get("height", 2000))})
            else:
                raise RuntimeError("unknown step %r" % s)
    except Exception as e:  # report which step failed, with what came before
        out.append({"step": len(out), "error": str(e)})
        status = 1
    finally:
        b.close()
    print(json.dumps(out))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
