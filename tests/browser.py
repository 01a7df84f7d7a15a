"""Opening a page in headless Chromium from a test: what JavaScript threw, and what the page holds.

`open_page(url, shot)` runs Debian's `chromium --headless` once with `--dump-dom` (the DOM
after the scripts ran, within a virtual time budget) and once with `--screenshot`. The
page under test is a copy with two scripts added by `instrument`: one first in <head>
that records every uncaught error and unhandled rejection, one that, after load,
writes into <html data-...> what the test asserts: the errors, the images that did not
decode, and for asv's page the data of every flot plot (series and points).

asv's site loads jQuery, flot and bootstrap from CDNs, which a test machine may not
reach: `vendor_asv_site` points those tags at Debian's packaged copies (libjs-jquery,
libghc-js-flot-data for flot 0.8.3, libjs-bootstrap, libjs-jquery-stupidtable) and at two
stubs (flot's orderBars plugin, blueimp-md5: used by the bar view and the regressions
page only), and drops the tags' integrity hashes, which name the CDN's bytes.
"""
from __future__ import annotations

import contextlib
import functools
import html as _html
import json
import re
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_MISSING = None if CHROMIUM else ("needs Debian's chromium for the headless browser check "
                                          "(apt-get update && apt-get install -y chromium; .ci/run installs it)")
VENDOR = {
    "jquery-3.3.1.min.js": "/usr/share/javascript/jquery/jquery.min.js",
    "jquery.flot.min.js": "/usr/share/haskell-js-flot/jquery.flot.min.js",
    "jquery.flot.time.min.js": "/usr/share/haskell-js-flot/jquery.flot.time.min.js",
    "jquery.flot.selection.min.js": "/usr/share/haskell-js-flot/jquery.flot.selection.min.js",
    "jquery.flot.categories.min.js": "/usr/share/haskell-js-flot/jquery.flot.categories.min.js",
    "stupidtable.min.js": "/usr/share/javascript/jquery-stupidtable/stupidtable.min.js",
    "bootstrap.min.js": "/usr/share/javascript/bootstrap/js/bootstrap.min.js",
    "bootstrap.min.css": "/usr/share/javascript/bootstrap/css/bootstrap.min.css",
}
STUBS = {"jquery.flot.orderBars.js": "/* stub: bar charts only */",
         "md5.min.js": "window.md5 = function (s) { return String(s); };  /* stub: regressions page only */"}
VENDOR_MISSING = next((f"needs {path} (apt-get install -y libjs-jquery libghc-js-flot-data libjs-bootstrap "
                       f"libjs-jquery-stupidtable; .ci/run installs them) to show asv's site offline"
                       for path in VENDOR.values() if not Path(path).exists()), None)

HEAD_PROBE = """<script>window.__errors = [];
addEventListener('error', function (e) { __errors.push(String(e.message || (e.target && e.target.src) || e)); }, true);
addEventListener('unhandledrejection', function (e) { __errors.push('unhandled rejection: ' + e.reason); });
</script>"""
LOAD_PROBE = """<script>addEventListener('load', function () { setTimeout(function () {
  var root = document.documentElement;
  root.setAttribute('data-errors', JSON.stringify(window.__errors));
  var images = Array.prototype.slice.call(document.images);
  root.setAttribute('data-images', images.length);
  root.setAttribute('data-broken-images', images.filter(function (i) { return !i.naturalWidth; }).length);
  var plots = [];
  if (window.jQuery) { jQuery('.flot-base').each(function () {
    var plot = jQuery(this).parent().data('plot');
    if (plot) plots.push(plot.getData().map(function (s) {
      return {label: String(s.label), points: s.data.filter(function (p) { return p && p[1] != null; }).length}; }));
  }); }
  root.setAttribute('data-plots', JSON.stringify(plots));
}, 3000); });</script>"""


def instrument(page: Path) -> None:
    """Add the error recorder first in <head> and the load probe at the end of <body> (a test copy only)."""
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"<head>", "<head>" + HEAD_PROBE, text, count=1, flags=re.IGNORECASE)
    text = re.sub(r"</body>", LOAD_PROBE + "</body>", text, count=1, flags=re.IGNORECASE)
    page.write_text(text, encoding="utf-8")


def vendor_asv_site(site: Path) -> None:
    """Point the CDN tags of asv's index.html at local copies (module docstring)."""
    vendor = site / "vendor"
    vendor.mkdir(exist_ok=True)
    for name, path in VENDOR.items():
        shutil.copy(path, vendor / name)
    for name, text in STUBS.items():
        (vendor / name).write_text(text)
    index = site / "index.html"

    def local(match: re.Match) -> str:
        tag = match.group(0)
        url = re.search(r'(?:src|href)="(https://[^"]+)"', tag).group(1)
        tag = tag.replace(url, "vendor/" + url.rsplit("/", 1)[1])
        return re.sub(r'\s(?:integrity|crossorigin|referrerpolicy)="[^"]*"', "", tag)

    text = re.sub(r'<(?:script|link)[^>]*(?:src|href)="https://(?:code\.jquery\.com|cdnjs\.cloudflare\.com|'
                  r'cdn\.jsdelivr\.net)[^>]*>', local, index.read_text(encoding="utf-8"))
    index.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def serve(root: Path):
    """An HTTP server of `root` on a free localhost port (asv's pages fetch JSON, which file:// forbids)."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1400,1000", "--virtual-time-budget=15000", *args],
                          capture_output=True, text=True, timeout=180)


def open_page(url: str, shot: Path) -> dict:
    """The probes' findings on the page at `url` (errors, images, broken images, plots), and a screenshot."""
    run = _chromium("--dump-dom", url)
    root = re.search(r"<html[^>]*>", run.stdout)
    if root is None:
        raise AssertionError(f"chromium returned no page for {url}: {run.stderr[-2000:]}")
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', root.group(0)))
    if "errors" not in attrs:
        raise AssertionError(f"the load probe never ran on {url} (the page did not finish loading); "
                             f"stderr: {run.stderr[-2000:]}")
    _chromium(f"--screenshot={shot}", url)
    return {"errors": json.loads(_html.unescape(attrs["errors"])), "images": int(attrs["images"]),
            "broken_images": int(attrs["broken-images"]), "plots": json.loads(_html.unescape(attrs["plots"])),
            "dom": run.stdout}
