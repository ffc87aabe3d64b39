"""Read a built HTML book: what it loads from outside itself.

Used by the book tests (``test_book_machinery.py`` on a small book,
``test_notebooks.py`` on the tiny build of the whole book). A reader of a downloaded
book, a classroom without internet and the build machines have no network, so every
page must take its scripts, stylesheets, fonts, images and frames from the book.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

# attributes that make the browser fetch something, per tag (links are fetched only
# for these rel values; an <a href> is a link the reader may follow, not a load)
_LOADS = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
}
_LINK_RELS = {
    "stylesheet",
    "preload",
    "modulepreload",
    "prefetch",
    "icon",
    "shortcut icon",
    "apple-touch-icon",
    "manifest",
}
_REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", flags=re.I)
_CSS_URL = re.compile(r"url\(\s*(['\"]?)([^'\")]+)\1\s*\)", flags=re.I)
_CSS_IMPORT = re.compile(r"@import\s+(?:url\()?\s*['\"]?([^'\"\s;)]+)", flags=re.I)
_URL_IN_SCRIPT = re.compile(r"""["'`]((?:https?:)?//[^"'`\s]+)""", flags=re.I)


def _remote(url: str) -> bool:
    """True for an absolute URL with a host (``https://``, ``//``); data: and paths are local."""
    return bool(_REMOTE.match(url))


class _Loads(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        urls: list[str] = []
        if tag == "link":
            rels = set(a.get("rel", "").lower().split()) | {a.get("rel", "").lower()}
            if rels & _LINK_RELS:
                urls.append(a.get("href", ""))
        for name in _LOADS.get(tag, ()):
            value = a.get(name, "")
            urls += (
                [part.strip().split(" ")[0] for part in value.split(",")]
                if "srcset" in name
                else [value]
            )
        if "style" in a:
            urls += [m.group(2) for m in _CSS_URL.finditer(a["style"])]
        for url in urls:
            if url and _remote(url):
                self.found.append(f"<{tag}> {url}")
        self._script = (
            tag == "script"
            and not a.get("src")
            and a.get("type", "text/javascript")
            in (
                "",
                "text/javascript",
                "module",
                "application/javascript",
            )
        )

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = False

    def handle_data(self, data: str) -> None:
        # an inline script that names a remote URL can inject a loader (thebe did)
        if self._script:
            self.found += [
                f"<script> inline {m.group(1)}" for m in _URL_IN_SCRIPT.finditer(data)
            ]


def page_loads(html: str) -> list[str]:
    """The remote resources one HTML page loads (empty: the page is self-contained).

    Examples
    --------
    >>> page_loads('<script src="https://cdn.example/x.js"></script><a href="https://a.b">ok</a>')
    ['<script> https://cdn.example/x.js']
    >>> page_loads('<link rel="stylesheet" href="../_static/a.css"><img src="data:image/png;base64,AA">')
    []
    """
    parser = _Loads()
    parser.feed(html)
    parser.close()
    return parser.found


def css_loads(css: str) -> list[str]:
    """The remote ``url()`` and ``@import`` targets of a stylesheet.

    Examples
    --------
    >>> css_loads('@import url("https://fonts.example/css"); a{background:url(../img.png)}')
    ['@import https://fonts.example/css']
    """
    found = [
        f"@import {m.group(1)}"
        for m in _CSS_IMPORT.finditer(css)
        if _remote(m.group(1))
    ]
    found += [
        f"url({m.group(2)})"
        for m in _CSS_URL.finditer(css)
        if _remote(m.group(2)) and not css[: m.start()].rstrip().endswith("@import")
    ]
    return found


def external_resources(html_dir: Path) -> list[str]:
    """Every remote load of a built book: ``"<file>: <what>"`` for each page and stylesheet."""
    problems = []
    for page in sorted(html_dir.rglob("*.html")):
        for what in page_loads(page.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{page.relative_to(html_dir).as_posix()}: {what}")
    for sheet in sorted(html_dir.rglob("*.css")):
        for what in css_loads(sheet.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{sheet.relative_to(html_dir).as_posix()}: {what}")
    return problems
