"""Export figures and runs: self-contained HTML, PNG through one shared headless Chromium, CSV, zip.

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
import io
import os
import shutil
import sys
import threading
import warnings
import zipfile
from pathlib import Path

import plotly.graph_objects as go

from gapdemo import runs, settings
from gapdemo.charts.curves import curves_figure
from gapdemo.charts.parameters import parameter_dataframe, parameter_figure
from gapdemo.charts.results import results_dataframe
from gapdemo.model.backends import parameter_table

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


def figure_to_html(figure: go.Figure) -> bytes:
    """A full HTML page with plotly.js inlined, so it opens offline."""
    html = figure.to_html(include_plotlyjs=True, full_html=True, include_mathjax=False,
                          config={"displaylogo": False})
    return html.encode("utf-8")


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


def dataframe_to_csv(frame, index: bool | None = None) -> bytes:
    """UTF-8 CSV; the index is written when it has a name (e.g. the back-end key) unless index says."""
    if index is None:
        index = frame.index.name is not None
    return frame.to_csv(index=index).encode("utf-8")


EXPORT_FORMATS = ("html", "png", "csv")
PNG_SIZE = {"width": 900, "height": 500, "scale": 2}


def _check_run_dir(run_dir) -> Path:
    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"no run directory at {path}")
    if runs.symbolic_links_in(path):
        raise ValueError(symbolic_links_sentence(path))
    return path


def symbolic_links_sentence(run_dir: Path) -> str:
    """Why a run folder with symbolic links is not packaged (a link could bring in any file of the server)."""
    links = runs.symbolic_links_in(run_dir)
    return (f"Run {Path(run_dir).name} holds symbolic links ({', '.join(links[:3])}); it is not packaged, since a "
            "link could bring any file of this machine into the download.")


def _parameter_table(config: dict) -> dict | None:
    backends = config.get("model", {}).get("backends")
    if not backends:
        return None

    return parameter_table(backends, image_size=int(config.get("data", {}).get("image_size", 100)),
                           dropout_rate=float(config.get("model", {}).get("dropout_rate", 0.5)))


def run_figures_and_tables(run_dir, include_parameters: bool = True) -> tuple[dict, dict]:
    """({name: figure}, {name: DataFrame}) for a run, built from its CSV and JSON files."""
    run_dir = _check_run_dir(run_dir)
    epoch_metrics, batch_metrics = runs.read_epoch_metrics(run_dir), runs.read_batch_metrics(run_dir)
    figures, tables = {}, {}
    if len(epoch_metrics) or len(batch_metrics):
        for metric in ("accuracy", "loss"):
            figures[f"curves_{metric}"] = curves_figure(epoch_metrics, batch_metrics, metric)
    if len(epoch_metrics):
        tables["results"] = results_dataframe(epoch_metrics)
    table = _parameter_table(runs.read_config(run_dir)) if include_parameters else None
    if table:
        figures["parameters"] = parameter_figure(table)
        tables["parameters"] = parameter_dataframe(table)
    return figures, tables


def _bundle_entries(run_dir: Path, include_parameters: bool) -> tuple[dict[str, bytes], list[str]]:
    """{path in zip: bytes} for the run's files and its charts, plus notes for the manifest."""
    entries = runs.read_run_files(run_dir)
    figures, tables = run_figures_and_tables(run_dir, include_parameters)
    png_available, png_message = png_export_available()
    notes = [] if png_available else [f"PNG charts left out: {png_message}"]
    for name, figure in figures.items():
        entries[f"charts/{name}.html"] = figure_to_html(figure)
        if png_available:
            entries[f"charts/{name}.png"] = figure_to_png(figure, **PNG_SIZE)
    for name, frame in tables.items():
        entries[f"tables/{name}.csv"] = dataframe_to_csv(frame)
    return entries, notes


def run_zip(run_dir, target=None, include_parameters: bool = True) -> bytes:
    """One zip of a run: its files, charts (HTML, and PNG when available), tables and MANIFEST.txt.

    MANIFEST.txt lists every other entry, one path a line; lines starting with # are notes.
    When target is given the zip is also written there (atomically).
    """
    run_dir = _check_run_dir(run_dir)
    entries, notes = _bundle_entries(run_dir, include_parameters)
    data = files_zip(entries, [f"gapdemo run {run_dir.name}", *notes])
    if target is not None:
        target = Path(target)
        _prepare_target(target.parent)
        _write_atomic(target, data)
    return data


def files_zip(entries: dict[str, bytes], notes: list[str]) -> bytes:
    """A zip of entries (name -> bytes) with a MANIFEST.txt: the notes as '# ' lines, then every entry's name."""
    manifest = [*(f"# {note}" for note in notes), *entries]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("MANIFEST.txt", "\n".join(manifest) + "\n")
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def _prepare_target(target_dir) -> Path:
    target = Path(target_dir)
    if target.exists() and not target.is_dir():
        raise ValueError(f"export target {target} is a file, not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create export folder {target}: {error.strerror or error}") from error
    if not os.access(target, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to export folder {target}")
    return target


def _write_atomic(path: Path, data: bytes) -> Path:
    """runs' atomic writer, with a failure as one readable ValueError; returns path."""
    try:
        runs.write_bytes_atomic(path, data)
    except OSError as error:
        raise ValueError(f"cannot write {path}: {error.strerror or error}") from error
    return path


def export_run(run_dir, target_dir, formats=EXPORT_FORMATS, include_parameters: bool = True) -> list[Path]:
    """Write each chart once per format (html, png) and the metrics and tables (csv) into target_dir.

    PNG is skipped with a warning when no browser is found. Returns the paths written.
    """
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown:
        raise ValueError(f"unknown export format(s) {', '.join(unknown)}; choose from {', '.join(EXPORT_FORMATS)}")
    run_dir = _check_run_dir(run_dir)
    target = _prepare_target(target_dir)
    figures, tables = run_figures_and_tables(run_dir, include_parameters)
    png_available, png_message = png_export_available()
    if "png" in formats and not png_available:
        warnings.warn(png_message, RuntimeWarning, stacklevel=2)
    written = []
    for name, figure in figures.items():
        if "html" in formats:
            written.append(_write_atomic(target / f"{name}.html", figure_to_html(figure)))
        if "png" in formats and png_available:
            written.append(_write_atomic(target / f"{name}.png", figure_to_png(figure, **PNG_SIZE)))
    if "csv" in formats:
        for name, data in runs.read_run_files(run_dir, runs.METRIC_FILES).items():
            written.append(_write_atomic(target / name, data))
        for name, frame in tables.items():
            written.append(_write_atomic(target / f"{name}.csv", dataframe_to_csv(frame)))
    return written
