"""Open an HTML page in headless Chromium as a reader would, and save what it shows.

    python report/browser_shot.py PAGE.html OUTDIR [--ready TEXT] [--click TEXT ...]
                                  [--width 1280 --height 900]

Writes OUTDIR/00-landing.png (the page once its scripts ran, its text stopped changing and, with
--ready, it shows TEXT) and OUTDIR/00-landing.txt (the text a reader sees there), then, for each
--click TEXT in order, clicks the first visible element whose own text is TEXT (a link, button or
menu entry: the report is a single-page app; `css:SELECTOR` clicks the first visible element
matching SELECTOR, e.g. an icon) and writes NN-<text>.png/.txt. Prints one JSON line
per view (with `unreachable_px`: how far content sticks out above a scrollable pane scrolled
to its top, out of the reader's reach; 0 is good). Exits 2 when Chromium is missing and 1 when
a click finds no element.

Talks to Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: file
descriptors 3 and 4), so it needs only the standard library and Debian's `chromium`.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")

# The page's visible text, and whether the page has finished loading.
TEXT_JS = "[document.readyState, document.body ? document.body.innerText : '']"

# Click the first visible element whose own text (trimmed) equals the target, or, for a target
# "css:SELECTOR", the first visible element matching SELECTOR (an icon); true when found.
CLICK_JS = """(() => {
  const want = %s;
  const css = want.startsWith('css:') ? want.slice(4) : null;
  const all = Array.from(document.querySelectorAll(
    css || 'a, button, li, span, div, td, p, h1, h2, h3'));
  const own = el => (el.innerText || '').trim();
  const hit = all.filter(el => (css || own(el) === want) && el.offsetParent !== null);
  if (!hit.length) return false;
  // the innermost match, and among those one that looks clickable (a link, a button, a pointer
  // cursor) before a heading with the same words
  const inner = hit.filter(e => !hit.some(o => o !== e && e.contains(o)));
  const clickable = e => e.closest('a, button, [role=button], [onclick]') ||
    getComputedStyle(e).cursor === 'pointer';
  const el = inner.find(clickable) || inner[0] || hit[0];
  el.scrollIntoView();
  el.click();
  return true;
})()"""


# Content a reader cannot reach: for each scrollable pane scrolled to its top, how far its content
# starts above the pane (a flex box that centres content taller than itself pushes the top out of
# reach); the largest such overflow in CSS pixels, 0 when everything can be scrolled to.
UNREACHABLE_JS = """(() => {
  let worst = 0;
  for (const c of document.querySelectorAll('*')) {
    const oy = getComputedStyle(c).overflowY;
    if (!(oy === 'auto' || oy === 'scroll') || c.scrollHeight <= c.clientHeight + 1) continue;
    const keep = c.scrollTop;
    c.scrollTop = 0;
    const top = c.getBoundingClientRect().top;
    let first = Infinity;
    for (const e of c.children) first = Math.min(first, e.getBoundingClientRect().top);
    c.scrollTop = keep;
    if (first < top) worst = Math.max(worst, Math.round(top - first));
  }
  return worst;
})()"""


class Chromium:
    """One headless Chromium driven over --remote-debugging-pipe."""

    def __init__(self, exe: str, width: int, height: int):
        self.profile = tempfile.mkdtemp(prefix="gan-claims-chromium-")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()
        # the child's ends, moved above 9 so that dup2 onto 3 and 4 neither clobbers one with
        # the other nor is a no-op (which would keep close-on-exec set)
        to_r, from_w = (_high(fd) for fd in (to_r, from_w))

        def child_fds():  # Chromium reads commands on fd 3 and writes replies on fd 4
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        args = [
            exe,
            "--headless",
            "--no-sandbox",  # root in a container; the page is our own file
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            f"--user-data-dir={self.profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args,
            preexec_fn=child_fds,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("CHROMIUM_LOG", os.devnull), "w"),
        )
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.session = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read(self) -> dict:
        while b"\0" not in self._buf:
            chunk = os.read(self._from_r, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def evaluate(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"script error: {res['exceptionDetails']}")
        return res["result"].get("value")

    def settle(self, ready: str | None = None, timeout: float = 60.0, quiet: float = 2.0) -> str:
        """The visible text once the page has loaded, shows `ready` (when given), and its text
        has not changed for `quiet` seconds; after `timeout` seconds, whatever it shows."""
        last, since, end = None, time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < end:
            state, text = self.evaluate(TEXT_JS)
            if text != last:
                last, since = text, time.monotonic()
            elif (
                state == "complete"
                and text
                and (ready is None or ready in text)
                and time.monotonic() - since >= quiet
            ):
                break
            time.sleep(0.25)
        return last or ""

    def navigate(self, url: str, ready: str | None = None) -> str:
        self.call("Page.navigate", url=url)
        return self.settle(ready)

    def screenshot(self, path: Path, full_page: bool) -> dict:
        params: dict = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            w, h = int(size["width"]), min(int(size["height"]), 8000)
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": w, "height": h, "scale": 1},
            )
        data = base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
        path.write_bytes(data)
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return {"png": str(path), "bytes": len(data), "width": w, "height": h}

    def close(self):
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def _high(fd: int) -> int:
    """`fd` duplicated to a descriptor >= 10 (close-on-exec), the original closed."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "view"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--click", action="append", default=[], metavar="TEXT")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--ready", metavar="TEXT", help="wait until the landing page shows TEXT")
    ap.add_argument("--viewport-only", action="store_true", help="not the whole page's height")
    args = ap.parse_args(argv)

    exe = next((shutil.which(c) for c in CHROMIUM if shutil.which(c)), None)
    if exe is None:
        print("no chromium: `apt-get install chromium` (Debian)", file=sys.stderr)
        return 2
    args.outdir.mkdir(parents=True, exist_ok=True)
    browser = Chromium(exe, args.width, args.height)
    try:
        views = [("landing", browser.navigate(args.page.resolve().as_uri(), args.ready))]
        _shoot(browser, args, 0, *views[0])
        status = 0
        for target in args.click:
            if not browser.evaluate(CLICK_JS % json.dumps(target)):
                print(json.dumps({"view": target, "error": "no visible element with this text"}))
                status = 1
                continue
            views.append((target, browser.settle()))
            _shoot(browser, args, len(views) - 1, *views[-1])
        return status
    finally:
        browser.close()


def _shoot(browser, args, i, name, text):
    stem = args.outdir / f"{i:02d}-{slug(name)}"
    info = browser.screenshot(stem.with_suffix(".png"), full_page=not args.viewport_only)
    stem.with_suffix(".txt").write_text(text)
    unreachable = browser.evaluate(UNREACHABLE_JS)
    print(
        json.dumps({"view": name, **info, "text_chars": len(text), "unreachable_px": unreachable})
    )


if __name__ == "__main__":
    sys.exit(main())
