"""MkDocs hooks of the documentation site: the plots of committed benchmark results, Sphinx roles dropped
from the rendered docstrings, and MathJax served from the site itself (the notebooks' formulas render
offline, with no CDN)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

PLOTS = "<!-- result-plots -->"
ROLE = re.compile(r":(?:func|mod|class|meth|data|attr|obj):(<code>)")  # Sphinx roles left in docstring text


def on_page_markdown(markdown: str, page, config, files) -> str:
    if PLOTS not in markdown:
        return markdown
    results = Path(config["docs_dir"]) / "benchmarks" / "results"  # a link to the repository's, as README's pictures name it
    plots = sorted(results.glob("*.png"))
    if not plots:
        return markdown.replace(PLOTS, "Not yet measured on a GPU: no result files are committed.")
    figures = [f"### {p.stem.replace('_', ' ')}\n\n![{p.stem}](benchmarks/results/{p.name})\n" for p in plots]
    return markdown.replace(PLOTS, "\n".join(figures))


def on_page_content(html: str, page, config, files) -> str:
    """The docstrings use Sphinx's cross-reference roles (``:func:`name```); drop the role, keep the name."""
    return ROLE.sub(r"\1", html)


def on_post_build(config) -> None:
    import jupyter_server_mathjax

    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    target = Path(config["site_dir"]) / "assets" / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.md", "unpacked"))
    # the bundle carries the STIX-Web fonts only (not MathJax's default TeX fonts): say so before startup
    (target / "config" / "tritonconv.js").write_text(
        'MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", '
        'imageFont: null}, SVG: {font: "STIX-Web"}});\n'
        'MathJax.Ajax.loadComplete("[MathJax]/config/tritonconv.js");\n')
