"""The documentation site, checked as a reader would: built with warnings as errors, served on localhost
and opened page by page in headless Chromium. A page that does not load, a broken internal link or
anchor, an image that does not display, or a formula left as TeX source fails the test. Screenshots
of the home page and a notebook page are kept in ``build/site-screenshots/``."""

import functools
import html.parser
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "site-screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the docs extra)")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("headless Chromium not installed (Debian: apt-get install chromium chromium-driver; "
                ".ci/run installs it)", allow_module_level=True)

MATHJAX_DONE = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.Hub) { done(-1); return; }
MathJax.Hub.Queue(() => done(document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_CHTML').length));
"""
BROKEN_IMAGES = "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);"
MARKDOWN_TEXT = ("return Array.from(document.querySelectorAll('.jp-MarkdownOutput, .jp-RenderedMarkdown, "
                 ".text_cell_render')).map(e => e.innerText).join('\\n');")


class _Ids(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        self.ids.update(v for k, v in attrs if k in ("id", "name") and v)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stdout + build.stderr
    assert "WARNING" not in build.stderr, build.stderr
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def markdown_source(notebook: str) -> str:
    cells = json.loads((ROOT / "spec_notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    return "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def pages(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out).parent).replace(".", "") for p in out.rglob("index.html")
                  if "assets" not in p.parts)


def test_every_page_loads_with_its_images_links_and_formulas(site, browser):
    out, base = site
    paths = pages(out)
    assert {"", "guide", "performance", "architecture", "kernels", "api/functional", "api/nn"} <= set(paths)
    notebooks = [p for p in paths if p.startswith("notebooks/")]
    assert len(notebooks) == len(list((ROOT / "spec_notebooks").glob("*.ipynb"))) == 7
    links: dict[str, str] = {}
    problems = []
    for path in paths:
        url = urllib.parse.urljoin(base, path + "/" if path else "")
        browser.get(url)
        title = browser.title
        if "404" in title or not browser.find_elements("css selector", "article"):
            problems.append(f"{path or 'home'}: did not load ({title!r})")
            continue
        problems += [f"{path}: image not displayed: {src}" for src in browser.execute_script(BROKEN_IMAGES)]
        for a in browser.find_elements("css selector", "article a[href]"):
            href = a.get_attribute("href")
            if href.startswith(base):
                links.setdefault(href, path)
        if path.startswith("notebooks/"):
            rendered = browser.execute_async_script(MATHJAX_DONE)
            formulas = len(re.findall(r"\$[^$]+\$", markdown_source(path.split("/")[1])))
            if formulas and rendered < 1:
                problems.append(f"{path}: {formulas} formulas in the notebook, none rendered by MathJax ({rendered})")
            text = browser.execute_script(MARKDOWN_TEXT)
            left = re.findall(r"\$[^$\n]{1,80}\$|\\(?:frac|sum|lfloor|cdot|times)\b", text)
            if left:
                problems.append(f"{path}: formulas left as TeX: {left[:3]}")
            if browser.find_elements("css selector", ".MathJax_Error, .merror"):
                problems.append(f"{path}: MathJax reported an error")
        if path == "":  # the home page opens with the quick start: its heading and code above the fold
            fold = browser.execute_script("return window.innerHeight")
            top = browser.execute_script("return document.getElementById('quick-start').getBoundingClientRect().top")
            if not 0 <= top < fold / 2:
                problems.append(f"home: the quick start starts at {top}px, not in the first half of a {fold}px window")
        if path in ("", "notebooks/01_1d_temporal_convolution"):
            SHOTS.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(SHOTS / f"{path.replace('/', '_') or 'home'}.png"))
    anchors: dict[str, set[str] | OSError] = {}  # per page linked to: its ids, each page fetched and parsed once
    for href, where in sorted(links.items()):
        target, _, fragment = href.partition("#")
        if target not in anchors:
            try:
                with urllib.request.urlopen(target) as response:
                    body = response.read().decode("utf-8", "replace")
            except OSError as err:
                anchors[target] = err
            else:
                ids = _Ids()
                if target.endswith("/"):
                    ids.feed(body)
                anchors[target] = ids.ids
        found = anchors[target]
        if isinstance(found, OSError):
            problems.append(f"{where}: broken link {href} ({found})")
        elif fragment and target.endswith("/") and urllib.parse.unquote(fragment) not in found:
            problems.append(f"{where}: link to a missing anchor {href}")
    assert not problems, "\n".join(problems)
    assert len(links) > 20  # the navigation and the pages' cross links were followed
    assert (SHOTS / "home.png").stat().st_size > 0 and (SHOTS / "notebooks_01_1d_temporal_convolution.png").exists()
