"""Served behind a bare nginx proxy_pass: Chromium reaches the page under a public name, and the page
still counts as served although nginx sends `Host: 127.0.0.1:PORT` and no forwarding header (the
browser's Origin gives the proxy away). The same server reached directly on loopback is local, and
the operator's link works through the proxy."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_browser import free_port

from conftest import CHROMIUM_ARGS, CHROMIUM_PATH
from gapdemo.operator import operator_file

pytestmark = pytest.mark.browser
PUBLIC_NAME = "pets.school.example"
PROJECT = Path(__file__).resolve().parents[1]

# What many proxy guides give: pass the WebSocket upgrade, nothing else (nginx then sends Host: $proxy_host).
NGINX_CONFIG = """
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {folder}/access.log;
  client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy; fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi; scgi_temp_path {folder}/scgi;
  server {{
    listen 127.0.0.1:{public_port};
    server_name {public_name};
    location / {{
      proxy_pass http://127.0.0.1:{app_port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
    }}
  }}
}}
"""


def wait_for(url: str, process, log: Path) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.3)
    process.kill()
    pytest.fail(f"{url} never answered: " + log.read_text()[-2000:])


@pytest.fixture
def proxied_page(tmp_path):
    """Streamlit on loopback with CORS and XSRF checks off (as proxy guides advise), nginx in front; yields
    (public port, app port, runs folder)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx) and os.environ.get("GAPDEMO_REQUIRE_BROWSER") != "1":
        pytest.skip("no nginx (CI installs it)")
    app_port, runs = free_port(), tmp_path / "runs"
    public_port = next(port for port in iter(free_port, None) if port != app_port)
    environment = {name: value for name, value in os.environ.items() if name != "GAPDEMO_SERVED"}
    app_log = tmp_path / "streamlit.log"
    app = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(app_port), "--server.address",
         "127.0.0.1", "--server.enableCORS", "false", "--server.enableXsrfProtection", "false"],
        cwd=PROJECT, env={**environment, "GAPDEMO_RUNS_DIR": str(runs)}, stdout=app_log.open("w"),
        stderr=subprocess.STDOUT)
    (tmp_path / "nginx.conf").write_text(NGINX_CONFIG.format(
        folder=tmp_path, public_port=public_port, public_name=PUBLIC_NAME, app_port=app_port))
    proxy = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=(tmp_path / "nginx.out").open("w"))
    try:
        wait_for(f"http://127.0.0.1:{app_port}/_stcore/health", app, app_log)
        wait_for(f"http://127.0.0.1:{public_port}/_stcore/health", proxy, tmp_path / "nginx.out")
        yield public_port, app_port, runs
    finally:
        for process in (proxy, app):
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {PUBLIC_NAME} 127.0.0.1"])
        yield chromium
        chromium.close()


def open_and_read(browser, url: str, artifact: str | None = None) -> tuple[str, str]:
    """The page's HTML once the Claims tab has drawn, and the address it ended on."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url)
    page.get_by_text("No claims measured in").wait_for(state="attached", timeout=90_000)
    page.get_by_text("Training time:").wait_for(timeout=30_000)
    if artifact:
        os.makedirs(PROJECT / "test-artifacts", exist_ok=True)
        page.screenshot(path=str(PROJECT / "test-artifacts" / artifact))
    html, address = page.content(), page.url
    page.close()
    return html, address


def test_a_bare_proxy_pass_gets_served_behaviour_and_the_operator_link_lifts_it(proxied_page, browser):
    public_port, app_port, runs = proxied_page
    public = f"http://{PUBLIC_NAME}:{public_port}/"
    html, _ = open_and_read(browser, public, "served-behind-bare-proxy.png")
    assert str(runs) not in html  # a student sees no server path
    assert "(a run may take 30 here)" in html  # and the class's bounds hold

    html, _ = open_and_read(browser, f"http://127.0.0.1:{app_port}/")  # the machine's own user, no proxy
    assert str(runs) in html and "(a run may take" not in html

    link = operator_file(app_port).read_text().strip()
    token = link.rsplit("operator=", 1)[1]
    html, address = open_and_read(browser, f"{public}?operator={token}")
    assert str(runs) in html and "Operator:" in html  # the operator, even through the proxy
    assert token not in address and token not in html and "visitor=" in address
