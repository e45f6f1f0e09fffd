"""The app as a person uses it: `spine up` with the UI, driven in headless Chromium through Playwright.

Each deployment runs as a user first runs it on a fresh machine: `spine up --deployment shared` (then
`per-domain`) finds no artifacts, trains the `quick` backbones from the packaged all-MiniLM-L6-v2, and
starts the backbone server(s), the three services and the Streamlit UI. The alert comes from the demo
replay's injected surge, scored by that backbone. Needs Debian's `chromium` (`apt-get install
chromium`); skipped without it unless CI_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_launch import free_port, free_ports_in_a_row

pytestmark = [pytest.mark.browser, pytest.mark.real_backbone]

CHROMIUM = os.environ.get("SPINE_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ADMIN = {"X-Admin-Key": "browser-s3cret"}


def _need_browser() -> None:
    missing = []
    if CHROMIUM is None:
        missing.append("Chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for both deployments: empty at first, as on a fresh clone."""
    return tmp_path_factory.mktemp("browser-artifacts")


@pytest.fixture(scope="module", params=["shared", "per-domain"])
def app_url(request: pytest.FixtureRequest, artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`spine up --deployment D` with the UI on free ports (training what is missing); stopped with Ctrl-C afterwards."""
    _need_browser()
    deployment: str = request.param
    folder = tmp_path_factory.mktemp(f"browser-{deployment}")
    movies = folder / "movies"
    movies.mkdir()
    from conftest import SMALL_MOVIES, SMALL_RATINGS, SMALL_TAGS

    (movies / "movies.csv").write_text(SMALL_MOVIES, encoding="utf-8")
    (movies / "tags.csv").write_text(SMALL_TAGS, encoding="utf-8")
    rows = [f"{u},{m},{r},{1_000_000 + n * 1000}" for n, (u, m, r) in enumerate(SMALL_RATINGS)]
    (movies / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n", encoding="utf-8")
    ports = {"support": free_port(), "recommender": free_port(), "sentiment": free_port(), "ui": free_port()}
    env = {
        **os.environ,
        "SPINE_ARTIFACTS_DIR": str(artifacts),
        "SPINE_RECOMMENDER_SEED_DIR": str(movies),
        **{f"SPINE_{s.upper()}_DATABASE_URL": f"sqlite:///{folder / f'{s}.db'}" for s in ("support", "recommender", "sentiment")},
        "SPINE_ADMIN_API_KEY": ADMIN["X-Admin-Key"],
        "HF_HUB_OFFLINE": "1",
    }
    argv = [str(Path(sys.executable).with_name("spine")), "up", "--deployment", deployment, "--profile", "quick"]
    argv += [f"--{name}-port={port}" for name, port in ports.items()] + [f"--backbone-port={free_ports_in_a_row(3)}"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    deadline = time.monotonic() + 1500  # the first start trains the quick backbone(s): minutes on 2 cores
    while time.monotonic() < deadline and process.poll() is None and not any("running; Ctrl-C" in line for line in lines):
        time.sleep(0.5)
    try:
        assert process.poll() is None and any("running; Ctrl-C" in line for line in lines), "".join(lines)
        assert any(line.startswith("training ") for line in lines), "".join(lines)  # the first run trains what it lacks
        yield {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 0, "".join(lines[-20:])


@pytest.fixture(scope="module")
def browser_page(app_url: dict[str, str]) -> Iterator[object]:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        try:
            yield page
        finally:
            browser.close()


def test_a_person_chats_with_the_support_bot(app_url: dict[str, str], browser_page: object) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    page.goto(app_url["ui"])  # the support chat is the app's first page
    expect(page.get_by_role("heading", name="Support", exact=True)).to_be_visible()
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("My card still has not arrived, what should I do?")
    box.press("Enter")
    # the bot's turn: an answer shows the intent it understood; an unsure bot hands over to a person instead
    expect(page.get_by_test_id("stChatMessage")).to_have_count(2)
    expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(re.compile(r"intent\s*[a-z_]+|Handed to a person: ticket #\d+"))
    assert "Traceback" not in page.content()


def test_a_viewer_sees_recommendations_with_reasons_and_a_like_reranks(app_url: dict[str, str], browser_page: object) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    page.goto(f"{app_url['ui']}/recommendations")
    expect(page.get_by_role("heading", name=re.compile(r"For viewer \d+"))).to_be_visible()
    likes = page.get_by_role("button", name="👍 Like")
    expect(likes.first).to_be_visible()
    assert likes.count() >= 1
    likes.first.click()
    expect(page.get_by_text(re.compile(r"^Liked "))).to_be_visible()
    wish = page.get_by_label("Describe what you'd like to watch")
    wish.fill("a funny space adventure")
    wish.press("Enter")
    expect(page.get_by_role("heading", name="For your wish")).to_be_visible()
    expect(page.get_by_text("Space Jokers (2001)").first).to_be_visible()


def test_an_analyst_sees_the_replay_surge_alert_and_acknowledges_it(app_url: dict[str, str], browser_page: object) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    # the demo replay (2,388 stories and one injected burst) is read every 10 s, 500 stories a run
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not httpx.get(f"{app_url['sentiment']}/alerts", timeout=10).json():
        time.sleep(2)
    alerts = httpx.get(f"{app_url['sentiment']}/alerts", timeout=10).json()
    assert alerts, httpx.get(f"{app_url['sentiment']}/sources", headers=ADMIN, timeout=10).json()
    page.goto(f"{app_url['ui']}/sentiment")
    expect(page.get_by_role("heading", name="Sentiment alerts", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"window from .* UTC")).first).to_be_visible()
    page.get_by_role("button", name="Acknowledge").first.click()
    expect(page.get_by_text(re.compile(r"^acknowledged ")).first).to_be_visible()
    acknowledged = httpx.get(f"{app_url['sentiment']}/alerts", params={"acknowledged": "true"}, timeout=10).json()
    assert [a["id"] for a in acknowledged] == [alerts[0]["id"]]
