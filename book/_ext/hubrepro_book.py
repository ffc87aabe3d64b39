"""Sphinx extension of the book: numbered, captioned glue figures and tables from other documents.

MyST-NB 1.x pastes a glued output from *another* notebook with ``{glue:any}`` and the
``:doc:`` option, but its ``{glue:figure}`` directive (caption, ``:name:`` for
cross-references, ``:alt:``) only reads the current document. The chapters of this book
are prose pages that paste from the executed notebooks, so this extension gives
``{glue:figure}`` the ``:doc:`` option::

    ```{glue:figure} nb20-fig-skew-vs-dim
    :doc: executed/20_hubness_vs_dimension.ipynb
    :name: fig-skew-vs-dim
    :alt: one sentence for screen readers

    Caption.
    ```

It also lets ``{glue:text}`` take ``doc.ipynb::key`` without a format spec (MyST-NB
would otherwise read ``doc.ipynb:`` as the key).

With ``:doc:`` the figure holds MyST-NB's own pending cross-document glue reference
(resolved after all documents are read, from the executed notebook's glue cache: an
image, or the HTML of a table), and a post-transform copies ``:alt:`` onto the resolved
image. Without ``:doc:`` the directive is MyST-NB's unchanged. A missing key is a
warning, hence an error under ``-W``.

Tables. ``{glue:table}`` takes the same options (``:doc:`` is required) and pastes a
glued table with its caption *above* it, numbered as a table ("Table 5.1", referenced
with ``{numref}``). Book labels inside a table made by
:func:`hubrepro.reporting.table` with ``links=`` (the claims ledger's evidence column)
become numbered links to the labelled section, figure or table; an unknown label is a
warning, hence an error under ``-W``.

It also makes warnings sticky across incremental builds: after a build with warnings
the saved environment is dropped, so the next build reads every page again and ``-W``
fails again until the cause is fixed.

Offline. The book loads nothing from outside itself, so formulas render without a
network. MathJax 3 comes from the ``django-static-mathjax`` package (a copy of the
MathJax distribution with no Django dependency, in the ``book`` extra): when
``mathjax_path`` is a path under ``mathjax/`` (``_config.yml`` sets
``mathjax/tex-mml-chtml.js``), the extension copies that distribution into
``_static/mathjax/`` of the HTML output, and MathJax is loaded on every page (the
sidebar shows formulas in titles on pages that have none of their own). sphinx-thebe's
loader, which would fetch thebe from a CDN and which this book never uses (no live-code
button), is dropped from the pages.

Editions. ``hubrepro_edition`` (default ``"full"``, or the environment variable
``HUBREPRO_BOOK_EDITION``) set to ``"student"`` builds the book without the exercises'
solutions: they are left out of the pages, the search index and the downloadable page
sources, not hidden (``make book-student``).

Book machinery, not part of the library: it lives next to the book (``book/_ext/``)
and is enabled in ``_config.yml`` as a local extension (``sphinx.local_extensions``,
which puts this folder on ``sys.path``). Book: :ref:`sec-reproducibility`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives as spec
from sphinx.errors import ConfigError, ExtensionError
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.fileutil import copy_asset

__all__ = ["setup"]

_ALT = "hubrepro_glue_alt"
_KEY = "hubrepro_glue_key"
logger = logging.getLogger(__name__)


def _note_source(document: nodes.document, rel_doc: str) -> None:
    """Make the pasting page depend on the executed notebook it pastes from.

    Sphinx then re-reads (and re-writes) the page when that notebook changes, so an
    incremental build never shows a stale number; without it only the notebook's own
    page would be rebuilt.
    """
    env = getattr(document.settings, "env", None)
    if env is None:
        return
    _, path = env.relfn2path(rel_doc, env.docname)
    env.note_dependency(path)


def _any_directive_class():
    from myst_nb.ext.glue.directives import PasteAnyDirective

    class PasteAnyDocDirective(PasteAnyDirective):
        """``{glue:any}`` / ``{glue}`` with ``:doc:``, recording the dependency."""

        def run(self) -> list[nodes.Node]:
            if "doc" in self.options:
                _note_source(self.state.document, self.options["doc"])
            return super().run()

    return PasteAnyDocDirective


class glue_table(nodes.figure):  # noqa: N801 (docutils node names are lower case)
    """A glued table with a caption above it, numbered as a *table* ("Table 5.1")."""


def _visit_glue_table(self, node: nodes.Element) -> None:
    node["classes"] = [*node.get("classes", []), "hubrepro-glue-table"]
    self.__dict__.setdefault("_hubrepro_table_starts", []).append(len(self.body))
    self.visit_figure(node)


def _depart_glue_table(self, node: nodes.Element) -> None:
    """Close the caption right after its paragraph, before the table.

    docutils closes ``<figcaption>`` in ``depart_figure`` (a legend may follow the
    caption); with the caption first that would put the whole table inside the
    caption, styled as one. The figcaption is closed after the caption's paragraph
    instead, and the figure closed here.
    """
    start = self._hubrepro_table_starts.pop()
    body = self.body
    try:
        opened = body.index("<figcaption>\n", start)
        closed = body.index("</p>\n", opened)
    except ValueError:  # no caption: a plain figure
        self.depart_figure(node)
        return
    body.insert(closed + 1, "</figcaption>\n")
    body.append("</figure>\n")


def _directive_class(node_class: type = nodes.figure, caption_first: bool = False):
    """``{glue:figure}`` (``node_class=nodes.figure``) or ``{glue:table}`` with ``:doc:``."""
    from myst_nb.ext.glue.directives import PasteFigureDirective
    from myst_nb.ext.glue.utils import (
        PendingGlueReferenceError,
        create_pending_glue_ref,
        glue_warning,
    )

    kind = "figure" if node_class is nodes.figure else "table"

    class PasteFigureDocDirective(PasteFigureDirective):
        """``{glue:figure}`` / ``{glue:table}`` with ``:doc:`` (a path to another notebook)."""

        option_spec = {
            **PasteFigureDirective.option_spec,
            "doc": spec.unchanged_required,
        }

        def run(self) -> list[nodes.Node]:
            key = self.arguments[0]
            if "doc" not in self.options:
                if node_class is nodes.figure:
                    return super().run()
                return [
                    glue_warning(
                        f"glue:table {key!r} needs :doc: (the executed notebook "
                        "that glued it)",
                        self.document,
                        self.line,
                    )
                ]
            doc = self.options["doc"]
            _note_source(self.state.document, doc)
            try:
                ref = create_pending_glue_ref(
                    self.document,
                    self.source,
                    self.line,
                    doc,
                    key,
                    inline=False,
                    gtype="any",
                )
            except PendingGlueReferenceError as exc:
                return [
                    glue_warning(
                        f"{exc} [glue:{kind} {key!r}]",
                        self.document,
                        self.line,
                    )
                ]
            figure_node = node_class("", ref)
            self.set_source_info(figure_node)
            figure_node[_KEY] = key
            if "alt" in self.options:
                figure_node[_ALT] = self.options["alt"]
            if self.options.get("figwidth") is not None:
                figure_node["width"] = self.options["figwidth"]
            if self.options.get("figclass"):
                figure_node["classes"] += self.options["figclass"]
            if self.options.get("align"):
                figure_node["align"] = self.options["align"]
            self.add_name(figure_node)
            if self.content:
                holder = nodes.Element()
                self.state.nested_parse(self.content, self.content_offset, holder)
                first = holder[0]
                if isinstance(first, nodes.paragraph):
                    caption = nodes.caption(first.rawsource, "", *first.children)
                    caption.source, caption.line = first.source, first.line
                    if caption_first:
                        figure_node.insert(0, caption)
                    else:
                        figure_node += caption
                elif not (isinstance(first, nodes.comment) and len(first) == 0):
                    return [
                        figure_node,
                        glue_warning(
                            "Figure caption must be a paragraph or empty comment.",
                            self.document,
                            self.line,
                        ),
                    ]
                if len(holder) > 1:
                    figure_node += nodes.legend("", *holder[1:])
            return [figure_node]

    return PasteFigureDocDirective


def _text_role():
    from myst_nb.ext.glue.roles import PasteTextRole

    class PasteTextDocRole(PasteTextRole):
        """``{glue:text}`` where ``path::key`` without a format spec works.

        MyST-NB splits the format spec off at the last colon, so ``doc.ipynb::key``
        alone would be read as the key ``doc.ipynb:`` with the format ``key``. An empty
        spec (``str(value)``) is appended in that case.
        """

        def run(self):
            if "::" in self.text:
                _note_source(self.inliner.document, self.text.split("::", 1)[0])
                if ":" not in self.text.split("::", 1)[1]:
                    self.text = self.text + ":"
            return super().run()

    return PasteTextDocRole


class _CopyAltText(SphinxPostTransform):
    """Finish a resolved cross-document glue figure: its ``:alt:`` text, and a check.

    The check warns when the pasted output is plain text where an image or a table was
    expected: a matplotlib figure glued while a non-inline backend was active (for
    instance ``MPLBACKEND=Agg`` inherited by the kernel) is stored as ``<Figure ...>``.
    """

    default_priority = 6  # after MyST-NB's ReplacePendingGlueReferences (5)

    def run(self, **kwargs: Any) -> None:
        for fig in list(self.document.findall(nodes.figure)):
            if not fig.get(_KEY):
                continue
            alt = fig.get(_ALT)
            images = list(fig.findall(nodes.image))
            for img in images:
                if alt:
                    img["alt"] = alt
            # a table (HTML) has no alt attribute: screen readers read its cells
            has_html = any(r.get("format") == "html" for r in fig.findall(nodes.raw))
            if (
                not images
                and not has_html
                and any(True for _ in fig.findall(nodes.literal_block))
            ):
                logger.warning(
                    f"glue:figure {fig[_KEY]!r} pasted plain text, not an image or a table; "
                    "was a matplotlib figure glued without the inline backend "
                    "(MPLBACKEND set for the kernel)? [hubrepro.glue]",
                    location=fig,
                )


#: what :func:`hubrepro.reporting.table` writes for a book label in a table cell
_TABLE_REF = re.compile(r'<a class="hubrepro-ref" href="#([^"]+)">([^<]*)</a>')


class _ResolveTableRefs(SphinxPostTransform):
    """Turn the book labels in glued tables into numbered links.

    A table made by :func:`hubrepro.reporting.table` with ``links=`` holds, for a
    label such as ``tbl-dbnorm-claims``, the anchor ``<a class="hubrepro-ref"
    href="#tbl-dbnorm-claims">``. The raw HTML of a glued output is never parsed by
    Sphinx, so this post-transform resolves it: the link points at the labelled
    section, figure or table (in whatever page holds it) and reads its number
    ("Table 5.3", "Fig. 2.1", "§5.2"; the title where there is no number). An unknown
    label is a warning, hence an error under ``-W``.
    """

    default_priority = 7  # after the glue references are resolved (5)
    formats = ("html",)

    def _target(self, label: str, location: nodes.Node) -> str | None:
        std = self.env.get_domain("std")
        if label not in std.labels:
            logger.warning(
                f"table cross-reference to an unknown label {label!r} [hubrepro.ref]",
                location=location,
            )
            return None
        docname, labelid, title = std.labels[label]
        uri = self.app.builder.get_relative_uri(self.env.docname, docname)
        text = title
        for figtype, ids in self.env.toc_fignumbers.get(docname, {}).items():
            if labelid in ids:
                fmt = self.config.numfig_format.get(figtype, "%s")
                text = fmt % ".".join(map(str, ids[labelid]))
                break
        else:
            secnums = self.env.toc_secnumbers.get(docname, {})
            doc_title = self.env.titles.get(docname)
            number = secnums.get("#" + labelid)
            if number is None and doc_title is not None and doc_title.astext() == title:
                number = secnums.get("")
            if number:
                text = "§" + ".".join(map(str, number))
        from html import escape

        return (
            f'<a class="reference internal hubrepro-ref" href="{escape(uri)}#{escape(labelid)}" '
            f'title="{escape(title)}">{escape(text)}</a>'
        )

    def run(self, **kwargs: Any) -> None:
        for raw in list(self.document.findall(nodes.raw)):
            if raw.get("format") != "html" or "hubrepro-ref" not in raw.astext():
                continue
            text = _TABLE_REF.sub(
                lambda m, raw=raw: self._target(m.group(1), raw) or m.group(0),
                raw.astext(),
            )
            new = nodes.raw("", text, format="html")
            new.source, new.line = raw.source, raw.line
            new["classes"] = list(raw.get("classes", []))
            raw.replace_self(new)


def _forget_environment_after_warnings(app, exception) -> None:
    """After a build with warnings, drop the saved environment.

    Sphinx re-reads only changed documents, so a warning raised by an unchanged page is
    not raised again by the next incremental build, and ``-W`` would then pass. Removing
    the pickled environment makes the next build read every page again (a full build,
    taken only after a failed or warning build) and report the warnings again.
    """
    if exception is None and not getattr(app, "_warncount", 0):
        return
    from pathlib import Path

    pickle = Path(app.doctreedir) / "environment.pickle"
    pickle.unlink(missing_ok=True)


# ------------------------------------------------------------------ offline assets

#: where the vendored MathJax goes, under ``_static`` of the HTML output
MATHJAX_DIR = "mathjax"
# folders of the distribution that no browser loads (liteDOM, for Node)
_MATHJAX_SKIPPED_DIRS = ("adaptors",)


def mathjax_distribution() -> Path:
    """The folder of MathJax 3's browser components (``es5``) of ``django-static-mathjax``.

    Raises
    ------
    ExtensionError
        When the package is not installed.
    """
    spec = importlib.util.find_spec("mathjax")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        es5 = Path(loc) / "static" / "mathjax" / "es5"
        if (es5 / "tex-mml-chtml.js").is_file():
            return es5
    raise ExtensionError(
        "the book ships MathJax from the package django-static-mathjax, which is not "
        "installed: run `make install` (or pip install -c constraints.txt -e '.[book]')"
    )


def _is_local(path: str) -> bool:
    return bool(path) and "://" not in path and not path.startswith("//")


def _check_mathjax_path(app, config) -> None:
    """Refuse a ``mathjax_path`` under ``mathjax/`` that the distribution does not have."""
    path = getattr(config, "mathjax_path", "")
    if _is_local(path) and path.split("/", 1)[0] == MATHJAX_DIR:
        component = path.split("/", 1)[1] if "/" in path else ""
        if not (mathjax_distribution() / component).is_file():
            raise ConfigError(
                f"mathjax_path {path!r} names no file of the MathJax distribution; "
                f"use {MATHJAX_DIR}/tex-mml-chtml.js"
            )


def _copy_mathjax(app, exception) -> None:
    """Copy the MathJax distribution into ``_static/mathjax`` of an HTML build."""
    path = getattr(app.config, "mathjax_path", "")
    if app.builder.format != "html" or not (
        _is_local(path) and path.split("/", 1)[0] == MATHJAX_DIR
    ):
        return
    src = mathjax_distribution()
    used = path.split("/", 1)[1]
    dest = Path(app.outdir) / "_static" / MATHJAX_DIR

    def skipped(rel: str) -> bool:
        rel = rel.replace(os.sep, "/")
        top = rel.split("/", 1)[0]
        # other combined components (tex-svg.js, mml-chtml.js, ...) and latest.js, the
        # loader that fetches MathJax from a CDN, are left out
        return top in _MATHJAX_SKIPPED_DIRS or (
            "/" not in rel and rel.endswith(".js") and rel != used
        )

    copy_asset(str(src), str(dest), excluded=skipped)
    licence = src.parent / "LICENSE"
    if licence.is_file():
        copy_asset(str(licence), str(dest))


def _drop_remote_loaders(app, pagename, templatename, context, doctree) -> None:
    """Remove sphinx-thebe's loader (it fetches thebe from a CDN) from every page."""
    scripts = context.get("script_files")
    if not scripts:
        return
    scripts[:] = [
        js
        for js in scripts
        if not str(js.filename or "").endswith("sphinx-thebe.js")
        and "THEBE_JS_URL" not in str(js.attributes.get("body", ""))
    ]


# ------------------------------------------------------------------ editions

EDITIONS = ("full", "student")
ENV_EDITION = "HUBREPRO_BOOK_EDITION"


def _apply_edition(app, config) -> None:
    """A student edition: no solutions in the pages, the search index or the sources."""
    edition = config.hubrepro_edition
    if edition not in EDITIONS:
        raise ConfigError(
            f"hubrepro_edition (or ${ENV_EDITION}) must be one of {list(EDITIONS)}, "
            f"not {edition!r}"
        )
    if edition == "student":
        config.hide_solutions = True  # sphinx-exercise drops {solution} when parsing
        if config.html_title:
            config.html_title = f"{config.html_title} (student edition)"


_SOLUTION_BLOCK = re.compile(
    r"^[ \t]*(`{3,}|:{3,})\{solution\}.*?^[ \t]*\1[ \t]*$\n?", flags=re.M | re.S
)


def strip_solutions(text: str) -> str:
    r"""``text`` (MyST markdown) without its ``{solution}`` blocks.

    A block opens with a fence (three or more backticks or colons) followed by
    ``{solution}`` and closes with the same fence alone on a line; fences nested inside
    it are shorter or of the other kind, as MyST requires.

    Examples
    --------
    >>> strip_solutions(":::{exercise}\nAsk.\n:::\n\n:::{solution} ex\nTell.\n:::\nEnd.\n")
    ':::{exercise}\nAsk.\n:::\n\nEnd.\n'
    """
    return _SOLUTION_BLOCK.sub("", text)


def _strip_copied_sources(app, exception) -> None:
    """In the student edition, remove the solutions from the downloadable page sources."""
    if app.config.hubrepro_edition != "student" or app.builder.format != "html":
        return
    for src in (Path(app.outdir) / "_sources").rglob("*.md"):
        text = src.read_text(encoding="utf-8")
        stripped = strip_solutions(text)
        if stripped != text:
            src.write_text(stripped, encoding="utf-8")


def setup(app) -> dict[str, Any]:
    """Register the extended glue directives, the offline assets and the editions.

    Needs ``myst_nb`` (loaded here) and, for the student edition, ``sphinx_exercise``.
    """
    app.setup_extension("myst_nb")
    app.add_directive_to_domain("glue", "figure", _directive_class(), override=True)
    # {glue:table}: a glued table, captioned above and numbered as a table
    app.add_enumerable_node(
        glue_table, "table", html=(_visit_glue_table, _depart_glue_table)
    )
    app.add_directive_to_domain(
        "glue", "table", _directive_class(glue_table, caption_first=True), override=True
    )
    app.add_role_to_domain("glue", "text", _text_role()(), override=True)
    any_directive = _any_directive_class()
    app.add_directive("glue", any_directive, override=True)
    app.add_directive_to_domain("glue", "", any_directive, override=True)
    app.add_directive_to_domain("glue", "any", any_directive, override=True)
    app.add_post_transform(_CopyAltText)
    app.add_post_transform(_ResolveTableRefs)
    app.connect("build-finished", _forget_environment_after_warnings)
    # offline: MathJax from the package, on every page; no CDN loaders
    app.set_html_assets_policy("always")
    app.connect("config-inited", _check_mathjax_path)
    app.connect("build-finished", _copy_mathjax)
    app.connect("html-page-context", _drop_remote_loaders, priority=900)
    app.add_config_value(
        "hubrepro_edition", os.environ.get(ENV_EDITION, "full"), "env", types=[str]
    )
    app.connect("config-inited", _apply_edition)
    app.connect("build-finished", _strip_copied_sources)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
