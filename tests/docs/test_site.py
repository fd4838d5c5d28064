"""The documentation site, built with warnings as errors and opened in a real
browser (Debian's Chromium, headless, driven by Playwright): the lifecycle page
draws the state diagram from the table with no word over another, every page
loads without a console error or a request off this machine, search finds a
rule by its code, and every exported name has its entry in the API reference."""

from __future__ import annotations

import functools
import http.server
import importlib
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from lifecycle import diagrams
from lifecycle.states import State

ROOT = Path(__file__).parents[2]
BUILD = ROOT / "docs" / "_build"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The site, built from the sources now (-W: a warning fails the build),
    served from a local port."""
    html = BUILD / "html"
    subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
         str(ROOT / "docs"), str(html)],
        check=True,
    )  # fmt: skip
    handler = functools.partial(QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def _open(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """A page at ``url``, with every console error, page error, failed request
    and request to another host collected as it loads."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))

    def local_only(route: object) -> None:
        request = route.request  # type: ignore[attr-defined]
        if request.url.startswith("http://127.0.0.1:"):
            route.continue_()  # type: ignore[attr-defined]
        else:
            problems.append(f"off the machine: {request.url}")
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", local_only)
    page.goto(url, wait_until="networkidle")
    return page, problems


def test_the_lifecycle_page_draws_every_state_and_transition(site: str, browser: Browser) -> None:
    page, problems = _open(browser, f"{site}/reference/lifecycle.html")
    diagram = page.locator(".mermaid svg").first
    diagram.wait_for(state="visible", timeout=20_000)
    text = " ".join(diagram.text_content().split())  # type: ignore[union-attr]
    for state in State:
        assert state.value in text
    for arc in diagrams.extract().arcs:
        assert arc.label in text, arc.label
    assert 0 < page.locator(".mermaid svg .edgePath, .mermaid svg path.flowchart-link").count()
    BUILD.mkdir(parents=True, exist_ok=True)
    diagram.scroll_into_view_if_needed()
    page.screenshot(path=str(BUILD / "lifecycle.png"), full_page=True)
    assert [] == problems
    page.close()


BOXES = """svg => {
    const boxes = [];
    for (const [kind, selector] of [["label", "g.edgeLabel"], ["state", "g.node"],
                                    ["group", ".cluster-label"]]) {
        for (const element of svg.querySelectorAll(selector)) {
            const text = element.textContent.trim();
            const box = element.getBoundingClientRect();
            if (text && box.width > 0) {
                boxes.push({kind, text, x: box.x, y: box.y, w: box.width, h: box.height});
            }
        }
    }
    return boxes;
}"""


def test_the_diagrams_words_do_not_overlap(site: str, browser: Browser) -> None:
    """No edge label, state or group title of the drawn diagram covers another:
    each can be read (a close-up is saved as docs/_build/lifecycle-diagram.png)."""
    page, _ = _open(browser, f"{site}/reference/lifecycle.html")
    diagram = page.locator(".mermaid svg").first
    diagram.wait_for(state="visible", timeout=20_000)
    page.locator(".mermaid svg g.node").first.wait_for(timeout=20_000)
    boxes = diagram.evaluate(BOXES)
    assert {"label", "state", "group"} == {box["kind"] for box in boxes}
    overlaps = [
        (one["text"], other["text"])
        for n, one in enumerate(boxes)
        for other in boxes[n + 1 :]
        if _meet(one, other)
    ]
    diagram.screenshot(path=str(BUILD / "lifecycle-diagram.png"))
    page.close()
    assert [] == overlaps


def _meet(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two boxes share more than a pixel's edge."""
    return bool(
        one["x"] + 1 < other["x"] + other["w"]
        and other["x"] + 1 < one["x"] + one["w"]
        and one["y"] + 1 < other["y"] + other["h"]
        and other["y"] + 1 < one["y"] + one["h"]
    )


def test_every_page_loads_without_a_console_error(site: str, browser: Browser) -> None:
    pages = sorted((BUILD / "html").rglob("*.html"))
    assert len(pages) >= 14
    for path in pages:
        relative = path.relative_to(BUILD / "html").as_posix()
        page, problems = _open(browser, f"{site}/{relative}")
        assert [] == problems, relative
        page.close()


def test_search_finds_a_rule_by_its_code(site: str, browser: Browser) -> None:
    page, problems = _open(browser, f"{site}/search.html?q=trial.once_per_month")
    results = page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=20_000)
    links = [
        results.nth(n).locator("a").first.get_attribute("href") or ""
        for n in range(results.count())
    ]
    assert any(
        re.search(r"reference/lifecycle\.html|explanation/faq\.html", link) for link in links
    )
    assert [] == problems
    page.close()


@pytest.mark.parametrize("module", ["lifecycle", "lifecycle.store", "lifecycle.testing"])
def test_every_exported_name_has_an_entry_in_the_api_reference(site: str, module: str) -> None:
    """Each name of a package's ``__all__`` has its own entry (an anchor to link
    to and a docstring), the constants a package re-exports included."""
    page = (BUILD / "html" / "reference" / "api.html").read_text()
    anchors = set(re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', page))
    exported = importlib.import_module(module).__all__
    assert [] == [name for name in exported if f"{module}.{name}" not in anchors]
    if module == "lifecycle.store":  # its docstring is where it is defined
        entry = page[page.index('id="lifecycle.store.SCHEMA_VERSION"') :]
        assert "The version of the tables" in entry[: entry.index("</dd>")]
