"""The behavior guide (rnnspec/guide.py, ``rnnspec report guide``): structure and links.

Renders the guide from the committed conformance reports into a temporary
folder and checks every page: one page per chapter of spec/, each with its
prose, its claims as a grid with one column per environment, and every link
(page and anchor) resolving; the findings page lists every finding of
spec/data/ with a reproducer where the data has one. The committed guide
(docs/guide/) is held to the same checks.
"""

import ast
import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rnnspec import guide
from rnnspec.spec.outcomes import SPEC_ROOT
from rnnspec.tools import findings
from rnnspec.tools.report import load_reports

REPORTS = SPEC_ROOT / "docs" / "conformance" / "reports"
COMMITTED = SPEC_ROOT / "docs" / "guide"


class Page(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.links, self.ids, self.tags, self.stack = [], set(), [], []
        self.grid_rows, self.env_headers, self.title = [], 0, ""
        self._row = None
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "link" and a.get("href"):
            self.links.append(a["href"])
        if tag == "th" and "env" in (a.get("class") or "").split():
            self.env_headers += 1
        if tag == "tr":
            self._row = []
        if tag == "td" and self._row is not None:
            self._row.append(a.get("class") or "")
        if tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "tr" and self._row:
            self.grid_rows.append(self._row)
            self._row = None
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def _chapters():
    spec_dir = SPEC_ROOT / "spec"
    return sorted(p.stem.removeprefix("test_") for p in spec_dir.glob("test_*.py"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("guide")
    guide.render(load_reports([REPORTS]), out)
    return out


def _check_site(root, n_envs=None):
    pages = {p.name: Page(p.read_text()) for p in root.glob("*.html")}
    assert {"index.html", "findings.html", "conventions.html"} <= set(pages)
    assert (root / "style.css").is_file()
    for name, page in pages.items():
        assert page.title.strip().endswith("rnnspec behavior guide"), name
        assert page.tags.count("main") == 1 and page.tags.count("nav") == 1, name
        for href in page.links:
            assert "://" not in href or href.startswith("https://"), f"{name}: {href}"
            if "://" in href:
                continue
            target, _, anchor = href.partition("#")
            target = target or name
            assert (root / target).is_file(), f"{name}: broken link {href}"
            if anchor:
                assert anchor in pages[target].ids, f"{name}: no #{anchor} in {target}"
        # every page links every chapter page (the navigation)
        for ch in [p for p in pages if p not in ("index.html", "findings.html", "conventions.html")]:
            assert ch in page.links, f"{name} does not link {ch}"
    return pages


def test_one_page_per_chapter_with_prose_and_a_grid(site):
    reports = load_reports([REPORTS])
    pages = _check_site(site)
    for slug in _chapters():
        assert f"{slug}.html" in pages, f"no page for spec/test_{slug}.py"
        page = pages[f"{slug}.html"]
        text = (site / f"{slug}.html").read_text()
        doc = ast.get_docstring(ast.parse((SPEC_ROOT / "spec" / f"test_{slug}.py").read_text()))
        second_line = doc.splitlines()[2].split()[0]   # the prose begins after the title line
        assert second_line in text
        if page.env_headers:
            assert page.env_headers == len(reports)
            cells = [r for r in page.grid_rows if "claim" in r[0]]
            assert cells and all(len(r) == 1 + len(reports) for r in cells)
            assert all(c.startswith("c ") for r in cells for c in r[1:])


def test_the_equivalence_chapter_shows_the_formulas(site):
    text = (site / "equivalence.html").read_text()
    assert "reference/cells.py" in text and "c' = sigma(f) * c + sigma(i) * g(c~)" in html.unescape(text)


def test_cells_are_coloured_by_outcome(site):
    text = (site / "equivalence.html").read_text()
    assert 'class="c passed"' in text and 'class="c diverged"' in text


def test_every_finding_has_a_section_and_a_reproducer_where_listed(site):
    page = Page((site / "findings.html").read_text())
    text = (site / "findings.html").read_text()
    for f_id, f in findings.catalogue().items():
        assert re.sub(r"[^A-Za-z0-9_-]+", "-", f_id).strip("-") in page.ids, f_id
    assert "Reproducer" in text and "keras.layers.SimpleRNN(1, use_bias=False" in text


def test_the_overview_has_every_environment(site):
    text = (site / "index.html").read_text()
    for r in load_reports([REPORTS]):
        assert f"<code>{r['environment']['env_name']}</code>" in text


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="no committed guide (docs/guide/)")
def test_the_committed_guide_is_well_formed():
    pages = _check_site(COMMITTED)
    assert {f"{slug}.html" for slug in _chapters()} <= set(pages)
