"""Browser fixtures: the system Chromium driven by Playwright, against a running demo server.

Every page a test opens is watched: a console error, an uncaught exception or a request to
another origin fails the test. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from tests.server import running_server

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PHONE = {"width": 375, "height": 740}
TABLET = {"width": 1280, "height": 800}
TABLET_PORTRAIT = {"width": 800, "height": 1280}
DESKTOP = {"width": 1440, "height": 900}
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    return os.environ.get("GRIDDISPATCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    from tests.conftest import service_missing

    path = chromium_path()
    if not path:
        service_missing("Chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("Playwright for Python is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def demo_server(tmp_path):
    """`griddispatch demo --test-clock` on a fresh SQLite file, clock at a Tuesday 10:00 in Shanghai."""
    with demo(tmp_path) as base:
        yield base


@contextmanager
def demo(tmp_path, env: dict | None = None):
    """The demo server of `demo_server`, with `env` set for it."""
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    with running_server(url, "--test-clock", command="demo", env=env) as base:
        set_clock(base, "2026-12-01T10:00:00+08:00")
        yield base


def set_clock(base: str, when: str | None = None, *, advance_minutes: float | None = None) -> str:
    body = {"now": when} if when else {"advance_minutes": advance_minutes}
    response = requests.post(f"{base}/api/v1/test-clock", json=body, timeout=30)
    response.raise_for_status()
    return response.json()["now"]


class Watched:
    """A page plus everything that went wrong on it."""

    def __init__(self, page, base: str, name: str) -> None:
        self.page = page
        self.base = base
        self.name = name
        self.errors: list[str] = []
        self.foreign: list[str] = []
        origin = urlparse(base).netloc
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("request", lambda r: None if urlparse(r.url).netloc in (origin, "") or r.url.startswith("data:")
                else self.foreign.append(r.url))

    def screenshot(self, label: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def check(self) -> None:
        assert not self.errors, self.errors
        assert not self.foreign, f"requests to another origin: {self.foreign}"


@pytest.fixture
def open_page(browser, request):
    """open_page(base, path, viewport, name) → Watched; checked for errors when the test ends."""
    opened: list[tuple[object, Watched]] = []

    def open_(base: str, path: str, viewport: dict, name: str | None = None, *, storage: dict | None = None) -> Watched:
        context = browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai",
                                      has_touch=viewport["width"] < 1000)
        page = context.new_page()
        watched = Watched(page, base, name or f"{request.node.name}-{len(opened)}")
        if storage:
            page.goto(f"{base}/static/css/app.css")
            page.evaluate("s => { for (const [k, v] of Object.entries(s)) localStorage.setItem(k, v); }", storage)
        page.goto(f"{base}{path}")
        opened.append((context, watched))
        return watched

    yield open_
    try:
        for _, watched in opened:
            watched.check()
    finally:
        for context, _ in opened:
            context.close()


def sign_in_storage(base: str, username: str, password: str = "demo") -> dict:
    """What the apps keep in localStorage after signing in, for opening a page already signed in."""
    import json

    response = requests.post(f"{base}/api/v1/auth/token", json={"username": username, "password": password}, timeout=10)
    response.raise_for_status()
    data = response.json()
    return {"griddispatch.token": data["token"], "griddispatch.user": json.dumps(data["user"])}


def sign_in_form(watched: Watched, username: str, password: str = "demo") -> Watched:
    """Sign in through a staff app's own form, then wait until the app says it is ready."""
    page = watched.page
    page.fill("form#signin input[name=username]", username)
    page.fill("form#signin input[name=password]", password)
    page.click("form#signin button[type=submit]")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    return watched


def building_in(base: str, area_code: str, index: int = 0) -> str:
    """The code of a building of the demo map under `area_code` (any level above buildings)."""
    code = area_code
    while True:
        features = requests.get(f"{base}/api/v1/areas", params={"parent": code, "limit": 50}, timeout=10).json()["features"]
        buildings = [f for f in features if f["properties"]["level"] == "building"]
        if buildings:
            return buildings[index]["properties"]["code"]
        code = features[0]["properties"]["code"]
