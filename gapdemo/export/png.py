"""PNG export through one shared headless Chromium: finding the browser, starting it once, rendering.

PNG goes through kaleido 1.x, which drives Chromium over choreographer. Starting Chromium takes
seconds, so one browser per process is started on the first PNG and kept: later PNGs take a
fraction of a second. It runs on its own asyncio loop in a daemon thread, a lock serialises
renders from Streamlit's many threads, and an atexit hook closes it. We keep our own loop rather
than kaleido.start_sync_server() because that server waits forever when the browser fails to
start and has no per-call timeout or lock.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import sys
import threading

import plotly.graph_objects as go

from gapdemo import settings

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser",  # Debian, Ubuntu
                       "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",  # macOS
                       "/Applications/Chromium.app/Contents/MacOS/Chromium")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Windows installs Chrome under Program Files (or the user's AppData), off the PATH.
WINDOWS_CHROME = (("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA"), ("Google", "Chrome", "Application", "chrome.exe"))
PNG_HINT = ("PNG export needs Chromium: apt-get install chromium" if sys.platform.startswith("linux") else
            "PNG export needs Chrome or Chromium: install one, or set GAPDEMO_CHROMIUM to its path")
START_TIMEOUT_S = 60  # first start on a cold, busy 2-core machine
RENDER_TIMEOUT_S = 60
# Added to choreographer's flags (which already include --headless, --no-sandbox for root,
# --disable-gpu, --disable-component-update, --disable-sync): nothing should touch the network.
OFFLINE_FLAGS = ("--disable-background-networking", "--disable-quic", "--no-pings",
                 "--disable-features=Translate,MediaRouter,OptimizationHints")



def find_chromium() -> str | None:
    """Path of the browser PNG export uses: $GAPDEMO_CHROMIUM, $BROWSER_PATH, the usual places on Linux,
    macOS and Windows, then PATH."""
    candidates = [settings.chromium(), os.environ.get("BROWSER_PATH"), *CHROMIUM_CANDIDATES]
    variables, below = WINDOWS_CHROME
    candidates += [os.path.join(os.environ[name], *below) for name in variables if os.environ.get(name)]
    candidates += [shutil.which(name) for name in CHROMIUM_NAMES]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def png_export_available() -> tuple[bool, str]:
    """(True, which browser) when PNG export can run, else (False, a one-line hint)."""
    try:
        import kaleido  # noqa: F401  (imported for its presence only)
    except ImportError:
        return False, "PNG export needs kaleido: pip install 'kaleido>=1'"
    path = find_chromium()
    if path is None:
        return False, PNG_HINT
    return True, f"PNG export uses {path}"


def _offline_chromium_class():
    from choreographer.browsers import Chromium  # deferred: kaleido's browser driver, only for a PNG

    class OfflineChromium(Chromium):
        """choreographer's Chromium with the network-quiet flags added."""

        def get_cli(self):
            return [*super().get_cli(), *OFFLINE_FLAGS]

    return OfflineChromium


class ExportBrowser:
    """One headless Chromium (a kaleido.Kaleido) on a private event loop; thread-safe, lazy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._kaleido = None
        self._exit_hook_registered = False

    def render(self, figure_dict: dict, options: dict) -> bytes:
        """Image bytes of figure_dict; options are kaleido's (format, width, height, scale)."""
        with self._lock:
            if self._kaleido is None:
                self._start()
            try:
                return self._call(self._kaleido.calc_fig(figure_dict, opts=options), RENDER_TIMEOUT_S)
            except Exception as error:
                self._stop()  # a wedged or crashed browser: the next call starts a fresh one
                raise RuntimeError(f"PNG export failed: {error!r}") from error

    def close(self) -> None:
        """Close the browser and its loop; a later render starts a new one."""
        if not self._lock.acquire(timeout=30):  # at exit, don't wait out a render stuck in another thread
            return
        try:
            self._stop()
        finally:
            self._lock.release()

    def _call(self, coroutine, timeout_s: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=timeout_s)

    def _start(self) -> None:
        available, message = png_export_available()
        if not available:
            raise RuntimeError(message)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gapdemo-png-export", daemon=True)
        self._thread.start()
        try:
            self._kaleido = self._call(self._open_kaleido(find_chromium()), START_TIMEOUT_S)
        except Exception as error:
            self._stop()
            raise RuntimeError(f"could not start Chromium for PNG export: {error!r}") from error
        if not self._exit_hook_registered:
            atexit.register(self.close)
            self._exit_hook_registered = True

    async def _open_kaleido(self, path: str):
        import kaleido  # deferred: a PNG is the only use, and the page starts without it

        # mathjax=False: kaleido's default loads MathJax from a CDN; plotly.js comes from plotly's package.
        browser = kaleido.Kaleido(path=path, mathjax=False, timeout=RENDER_TIMEOUT_S,
                                  browser_cls=_offline_chromium_class())
        await browser.open()
        return browser

    def _stop(self) -> None:
        if self._kaleido is not None:
            try:
                self._call(self._kaleido.close(), 15)
            except Exception:  # noqa: BLE001  closing is best effort; the process dies with us anyway
                pass
            self._kaleido = None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()
            self._loop, self._thread = None, None


_EXPORT_BROWSER = ExportBrowser()  # closed by its own atexit hook


def figure_to_png(figure: go.Figure, scale: float = 2, width: int = 900, height: int = 500) -> bytes:
    """PNG bytes of figure at width*scale x height*scale pixels (RuntimeError without Chromium)."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or not 10 <= value <= 5000:
            raise ValueError(f"{name} must be an integer from 10 to 5000 pixels, got {value!r}")
    if not 0 < scale <= 10:
        raise ValueError(f"scale must be above 0 and at most 10, got {scale!r}")
    figure_dict = figure.to_dict() if isinstance(figure, go.Figure) else dict(figure)
    options = {"format": "png", "width": width, "height": height, "scale": scale}
    return _EXPORT_BROWSER.render(figure_dict, options)
