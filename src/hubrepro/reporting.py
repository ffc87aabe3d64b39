"""Tables, figures and provenance for the book.

Notebooks call :func:`use_book_style` once, build their experiment config from the
parameters cell with :func:`notebook_config`, build figures with matplotlib (or the
``plot_*`` helpers of the science modules), save and glue each result with
:func:`publish` (an artifact file plus a glue key the book pastes), and end with
:func:`record_provenance`, which records what produced the numbers: the git commit
and dirty flag, the configuration actually used, package versions and data checksums.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from hubrepro.datasets.manifest import sha256_file

__all__ = [
    "use_book_style",
    "notebook_config",
    "publish",
    "record_provenance",
    "provenance",
    "provenance_line",
    "write_provenance",
    "save_artifact",
    "sha256_file",
    "format_table",
    "Table",
    "table",
    "column_label",
    "statistics_as_rows",
    "COLUMN_LABELS",
    "TABLE_CLASS",
    "REF_CLASS",
]

_PACKAGES = (
    "hubrepro",
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "open_clip_torch",
    "papermill",
    "jupyter-book",
)


def use_book_style() -> None:
    """Set the matplotlib style shared by every figure of the book."""
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 10,
            "legend.frameon": False,
            "image.cmap": "viridis",
        }
    )


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def provenance(
    params: Any = None, data_files: Iterable[str | Path] = ()
) -> dict[str, Any]:
    """Describe what produced a notebook's numbers.

    ``params`` is a mapping of parameters or an experiment config (a dataclass, recorded
    through :func:`hubrepro.config.to_params`). Returns a JSON-serialisable dict: git
    commit and dirty flag (``None`` outside a checkout), the parameters, Python/platform,
    package versions, torch threads and device availability, and the SHA-256 of each
    data file.
    """
    import torch

    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        from hubrepro.config import to_params

        params = to_params(params)

    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": None if status is None else bool(status),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "parameters": dict(params or {}),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "data": {str(p): sha256_file(p) for p in data_files},
    }


def provenance_line(prov: Mapping[str, Any]) -> str:
    """One line for the page: commit, dirty flag, versions."""
    commit = (prov.get("commit") or "unknown")[:10]
    dirty = " (uncommitted changes)" if prov.get("dirty") else ""
    pk = prov.get("packages", {})
    return (
        f"Produced by hubrepro {pk.get('hubrepro')} at commit {commit}{dirty}, "
        f"Python {prov.get('python')}, torch {pk.get('torch')}, numpy {pk.get('numpy')}."
    )


def _replace_text(path: Path, text: str) -> Path:
    from hubrepro.io import atomic_write

    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")), overwrite=True)


def write_provenance(artifact_dir: str | Path, prov: Mapping[str, Any]) -> Path:
    """Write ``provenance.json`` into ``artifact_dir`` (created if needed), atomically."""
    text = json.dumps(prov, indent=1, sort_keys=True, default=str) + "\n"
    return _replace_text(Path(artifact_dir) / "provenance.json", text)


def save_artifact(obj: Any, artifact_dir: str | Path, key: str) -> Path:
    """Save a DataFrame (CSV) or matplotlib Figure (PNG) under ``artifact_dir/key``.

    Artifacts are build outputs: an existing file of the same key is replaced, atomically
    (:func:`hubrepro.io.atomic_write`), so an interrupted notebook never leaves half a file.
    """
    import io

    d = Path(artifact_dir)
    if hasattr(obj, "to_csv"):
        buf = io.StringIO()
        obj.to_csv(buf)
        return _replace_text(d / f"{key}.csv", buf.getvalue())
    if hasattr(obj, "savefig"):
        from hubrepro.io import atomic_write

        return atomic_write(
            d / f"{key}.png", lambda fh: obj.savefig(fh, format="png"), overwrite=True
        )
    return _replace_text(
        d / f"{key}.json", json.dumps(obj, indent=1, default=str) + "\n"
    )


def notebook_config(cls: type, namespace: Mapping[str, Any]) -> Any:
    """Build a notebook's experiment config from the variables of its parameters cell.

    Every field of the frozen dataclass ``cls`` that ``namespace`` defines (a notebook
    passes ``globals()`` right after its ``parameters`` cell, so papermill's injected
    values are the ones read) is taken from it; the fields the notebook does not expose
    keep their defaults. Values are checked as by :func:`hubrepro.config.from_params`,
    so a mistyped ``-p`` value fails before any work starts. The names come from the
    config class, so no hand-written list of parameter names can drift from it.

    Parameters
    ----------
    cls : type
        A dataclass whose field names are the notebook's parameter names.
    namespace : Mapping
        The notebook's global variables.

    Returns
    -------
    An instance of ``cls``.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Cfg:
    ...     seed: int = 0
    ...     k: int = 10
    >>> notebook_config(Cfg, {"seed": 3, "glue": print})
    Cfg(seed=3, k=10)
    """
    from hubrepro.config import from_params

    if not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
        raise TypeError(
            f"notebook_config: `cls` must be a dataclass type; got {cls!r}. Pass the "
            "experiment's config class, e.g. StudyConfig."
        )
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    return from_params(cls, {n: namespace[n] for n in names if n in namespace})


def publish(
    key: str, obj: Any, artifact_dir: str | Path | None = None, *, display: bool = False
) -> Any:
    """Save ``obj`` as an artifact (when ``artifact_dir`` is given) and glue it as ``key``.

    The one call behind every number, table and figure the book pastes: a DataFrame is
    written as ``artifact_dir/key.csv``, a figure as ``key.png``, anything else as
    ``key.json`` (:func:`save_artifact`), then ``myst_nb.glue(key, obj,
    display=display)`` makes it available to ``{glue:*}`` pastes. A table key
    (``nbNN-tbl-...``) is always glued as a :class:`Table`: a bare DataFrame goes
    through :func:`table` with its defaults (pass a :func:`table` to choose labels,
    decimals or links). Plain numbers and
    strings are glued only (pass ``artifact_dir=None``). Returns ``obj`` so a notebook
    cell can end with it and show it.
    """
    from myst_nb import glue

    if artifact_dir is not None:
        save_artifact(obj, artifact_dir, key)
    shown = obj
    if "-tbl-" in key and not isinstance(obj, Table):
        import pandas as pd

        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"publish: the table {key!r} must be a DataFrame or a reporting.table; "
                f"got {type(obj).__name__}."
            )
        shown = table(obj)  # every glued table goes through the one formatting helper
    glue(key, shown, display=display)
    return obj


def record_provenance(
    cfg: Any, key: str, *, data_files: Iterable[str | Path] = ()
) -> dict[str, Any]:
    """Write ``provenance.json`` for the config actually used and glue its one-line summary.

    ``cfg`` is the notebook's final experiment config (after any
    ``dataclasses.replace``); it must have an ``artifact_dir`` field. The provenance
    (:func:`provenance`) is written into that folder and :func:`provenance_line` is
    glued as ``key``. Returns the provenance record.
    """
    prov = provenance(cfg, data_files)
    write_provenance(cfg.artifact_dir, prov)
    publish(key, provenance_line(prov))
    return prov


def format_table(df: Any, decimals: int = 2) -> Table:
    """The same as :func:`table` with ``decimals`` (kept for older notebooks; use :func:`table`)."""
    return table(df, decimals)


#: Human names of the column names the drivers produce (exact matches; see
#: :func:`column_label` for the patterns built on them).
COLUMN_LABELS: dict[str, str] = {
    "label": "method",
    "method": "method",
    "condition": "training condition",
    "dataset": "dataset",
    "direction": "direction",
    "MdR": "median rank",
    "MnR": "mean rank",
    "Rsum": "Rsum (both directions)",
    "skewness": "skewness of N_k",
    "skewness_nonzero": "skewness of N_k (retrieved items only)",
    "antihub_rate": "anti-hub rate",
    "hub_occupancy": "hub occupancy",
    "robin_hood": "Robin Hood index",
    "gini": "Gini index",
    "max_occurrence": "largest N_k",
    "bad_hub_fraction": "bad-hub share",
    "good_neighbor_rate": "good-neighbour rate",
    "seconds": "time (s)",
    "peak_mib": "peak memory (MiB)",
    "extra_mib": "memory above the start (MiB)",
    "ratio_to_floor": "time / matmul floor",
    "seed": "seed",
    "n": "n",
    "mean": "mean",
    "sd": "sd",
    "ci_low": "95 % interval, low",
    "ci_high": "95 % interval, high",
    "verdict": "verdict",
    "interval": "difference [95 % interval]",
    "evidence": "evidence",
    "claim": "claim",
    "paper": "paper",
    "hyper": "chosen hyperparameters",
}

_DIRECTION_PREFIXES = {"q2g": "query→gallery", "g2q": "gallery→query"}
_SIDE_PREFIXES = {"gallery": "gallery", "query": "queries"}
_VALUE_LABELS = {
    "query_to_gallery": "query→gallery",
    "gallery_to_query": "gallery→query",
}


def column_label(name: Any, directions: Mapping[str, str] | None = None) -> str:
    """A human name for a driver's column name.

    Exact names come from :data:`COLUMN_LABELS`; ``q2g_X`` / ``g2q_X`` become ``X,
    query→gallery`` / ``X, gallery→query`` (or the words in ``directions``, e.g.
    ``{"q2g": "text→image"}``); ``gallery_X`` / ``query_X`` become ``X (gallery)`` /
    ``X (queries)``; a trailing `` sd`` or ``_sd`` becomes ``(sd)``; other underscores
    become spaces. Non-strings (tuples of a MultiIndex) are joined with ", ".

    Examples
    --------
    >>> column_label("q2g_R@1")
    'R@1, query→gallery'
    >>> column_label("gallery_antihub_rate sd")
    'anti-hub rate (gallery) (sd)'
    >>> column_label("g2q_MnR", {"g2q": "image→text"})
    'mean rank, image→text'
    """
    if isinstance(name, tuple):
        return ", ".join(column_label(n, directions) for n in name if str(n) != "")
    text = str(name)
    for suffix in (" sd", "_sd"):
        if text.endswith(suffix):
            return f"{column_label(text[: -len(suffix)], directions)} (sd)"
    if text in COLUMN_LABELS:
        return COLUMN_LABELS[text]
    if text in _VALUE_LABELS:
        return _VALUE_LABELS[text]
    head, _, rest = text.partition("_")
    words = {**_DIRECTION_PREFIXES, **(directions or {})}
    if rest and head in words:
        return f"{column_label(rest, directions)}, {words[head]}"
    if rest and head in _SIDE_PREFIXES:
        return f"{column_label(rest, directions)} ({_SIDE_PREFIXES[head]})"
    return text.replace("_", " ")


#: CSS class of every table made by :func:`table` (the book's check that a glued table
#: came through this helper looks for it).
TABLE_CLASS = "hubrepro-table"
#: CSS class of a cross-reference to a book label inside a table; the book's Sphinx
#: extension turns ``href="#<label>"`` into a link to the labelled section, figure or
#: table, with its number as the text.
REF_CLASS = "hubrepro-ref"


#: what a book label looks like (only such values of a ``links`` column become links)
_BOOK_LABEL = re.compile(r"(?:sec|fig|tbl|eq)-[\w-]+")


def _esc(text: Any) -> str:
    import html

    return html.escape(str(text), quote=True)


class Table:
    """A table for the page: human column names, fixed decimals, never truncated.

    Made by :func:`table`. Renders as HTML (every row and column; missing values as
    "—"; numbers right-aligned; grouped column headers for a two-level column index;
    repeated row labels merged) in the book and as aligned text elsewhere;
    :meth:`to_csv` (used by :func:`publish` for the artifact) writes the unrounded
    data with the drivers' column names, for re-use.

    Attributes
    ----------
    display : pandas.DataFrame
        The formatted strings shown.
    data : pandas.DataFrame
        The unrounded source.
    """

    def __init__(
        self,
        display: Any,
        data: Any,
        show_index: bool,
        *,
        numeric: Any = None,
        links: Iterable[Any] = (),
        bold: Any = None,
    ) -> None:
        self.display = display
        self.data = data
        self.show_index = show_index
        self._numeric = numeric
        self._links = set(links)
        self._bold = bold
        # text columns whose cells run long (a claim, a code line): given room to wrap
        self._long = {
            j
            for j in range(display.shape[1])
            if display.iloc[:, j].astype(str).str.len().max() > 40
        } if len(display) else set()  # fmt: skip

    # -------------------------------------------------------------- HTML
    def _header_rows(self) -> list[str]:
        import pandas as pd

        cols = self.display.columns
        levels = (
            [list(cols.get_level_values(i)) for i in range(cols.nlevels)]
            if isinstance(cols, pd.MultiIndex)
            else [list(cols)]
        )
        names = list(self.display.index.names) if self.show_index else []
        rows = []
        for li, values in enumerate(levels):
            cells = []
            if li == len(levels) - 1:
                cells += [
                    f'<th class="hubrepro-rowhead">{_esc(n or "")}</th>' for n in names
                ]
            elif names:
                cells.append(f'<th colspan="{len(names)}"></th>')
            j = 0
            while j < len(values):
                span = 1
                # an upper level groups equal neighbours (only under the same parents)
                while (
                    li < len(levels) - 1
                    and j + span < len(values)
                    and all(levels[u][j + span] == levels[u][j] for u in range(li + 1))
                ):
                    span += 1
                attr = f' colspan="{span}"' if span > 1 else ""
                cls = "hubrepro-group" if li < len(levels) - 1 else "hubrepro-colhead"
                if len(str(values[j])) <= 8:  # "d = 100", "R@1": never broken
                    cls += " short"
                cells.append(f'<th class="{cls}"{attr}>{_esc(values[j])}</th>')
                j += span
            rows.append("<tr>" + "".join(cells) + "</tr>")
        return rows

    def _index_cells(self) -> list[list[str]]:
        """Row-header cells of every row; an outer level's repeated values are merged."""
        import pandas as pd

        idx = self.display.index
        n = len(idx)
        if not self.show_index:
            return [[] for _ in range(n)]
        levels = (
            [list(idx.get_level_values(i)) for i in range(idx.nlevels)]
            if isinstance(idx, pd.MultiIndex)
            else [list(idx)]
        )
        out: list[list[str]] = [[] for _ in range(n)]
        # repeated labels of an outer level are merged into one cell; so are those of a
        # single-level index (rows of one group, e.g. one paper's claims)
        merge_last = len(levels) == 1
        for li, values in enumerate(levels):
            i = 0
            while i < n:
                span = 1
                if li < len(levels) - 1 or merge_last:
                    while i + span < n and all(
                        levels[u][i + span] == levels[u][i] for u in range(li + 1)
                    ):
                        span += 1
                attr = f' rowspan="{span}"' if span > 1 else ""
                # a long label (a claim, a published setting) may wrap; short ones
                # (methods such as "DualDIS (principled)") stay on one line
                cls = (
                    "hubrepro-rowhead long"
                    if len(str(values[i])) > 24
                    else "hubrepro-rowhead"
                )
                out[i].append(f'<th class="{cls}"{attr}>{_esc(values[i])}</th>')
                i += span
        return out

    def _cell(self, i: int, j: int) -> str:
        text = self.display.iat[i, j]
        col = self.display.columns[j]
        classes = []
        if self._numeric is not None and bool(self._numeric.iat[i, j]):
            classes.append("num")
        elif j in self._long:
            classes.append("long")
        body = _esc(text)
        if col in self._links and _BOOK_LABEL.fullmatch(str(text)):
            body = f'<a class="{REF_CLASS}" href="#{_esc(text)}">{_esc(text)}</a>'
        if self._bold is not None and bool(self._bold.iat[i, j]):
            body = f"<strong>{body}</strong>"
        cls = f' class="{" ".join(classes)}"' if classes else ""
        return f"<td{cls}>{body}</td>"

    def _repr_html_(self) -> str:
        heads = self._index_cells()
        body = []
        for i in range(len(self.display)):
            cells = heads[i] + [self._cell(i, j) for j in range(self.display.shape[1])]
            body.append("<tr>" + "".join(cells) + "</tr>")
        return (
            f'<table class="{TABLE_CLASS}">\n<thead>\n'
            + "\n".join(self._header_rows())
            + "\n</thead>\n<tbody>\n"
            + "\n".join(body)
            + "\n</tbody>\n</table>"
        )

    def __repr__(self) -> str:
        return self.display.to_string(index=self.show_index, na_rep="—")

    def to_csv(self, path: str | Path) -> None:
        """Write the unrounded source data (driver column names) as CSV."""
        self.data.to_csv(path, index=self.show_index)


def _fmt_value(v: Any, decimals: int) -> str:
    import numpy as np

    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    if hasattr(v, "format") and hasattr(v, "low") and hasattr(v, "high"):
        return v.format(decimals)  # an inference.Interval: "+1.23 [0.45, 2.01]"
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        return f"{float(v):,.{decimals}f}"
    return _VALUE_LABELS.get(str(v), str(v))


def _is_number(v: Any) -> bool:
    import numpy as np

    if isinstance(v, bool | np.bool_):
        return False
    return isinstance(v, int | float | np.integer | np.floating) or (
        hasattr(v, "low") and hasattr(v, "high")
    )


def _sd_partner(col: Any, columns: Sequence[Any]) -> Any:
    for suffix in (" sd", "_sd"):
        if isinstance(col, str) and f"{col}{suffix}" in columns:
            return f"{col}{suffix}"
    return None


def statistics_as_rows(df: Any, *, name: str = "statistic") -> Any:
    """A wide table of statistics (columns) per setting (rows), transposed for the page.

    Many statistics of a few settings (two protocols, five dimensions) read better as
    one row per statistic, under its human name (:func:`column_label`), and one column
    per setting. Values keep their types (integers stay integers).

    Examples
    --------
    >>> import pandas as pd
    >>> t = statistics_as_rows(pd.DataFrame({"R@1": [47.5, 37.4], "robin_hood": [0.5, 0.6]},
    ...                                     index=["random", "by-module"]))
    >>> list(t.index), list(t.columns)
    (['R@1', 'Robin Hood index'], ['random', 'by-module'])
    """
    out = df.astype(object).rename(columns=lambda c: column_label(c)).T
    out.index.name = name
    return out


def table(
    df: Any,
    decimals: int | Mapping[Any, int] = 2,
    *,
    columns: Mapping[Any, str] | None = None,
    values: Mapping[Any, Any] | None = None,
    directions: Mapping[str, str] | None = None,
    index: bool | None = None,
    pm: bool | Mapping[str, str] = False,
    links: Iterable[Any] = (),
    highlight: str | None = None,
) -> Table:
    """Format a driver's DataFrame as a :class:`Table` for the book.

    The one formatting helper of the book's tables: column (and index) names become
    human names (:func:`column_label`, overridden by ``columns``); numbers get
    ``decimals`` places (an int, or a mapping from the *original* column name to
    places, default 2), integers thousands separators, missing values "—", an
    interval (:class:`hubrepro.inference.Interval`) reads ``+1.23 [0.45, 2.01]``;
    method keys in a ``method``/``label`` column or index level become their display
    labels (:func:`hubrepro.normalize.variants.variant_label`); direction keys become
    arrows; ``values`` maps a column name to a function (or dict) of its values. A
    two-level column index gives grouped headers (e.g. dataset over direction).

    Parameters
    ----------
    df : pandas.DataFrame
        The data, unrounded.
    decimals : int or mapping, default 2
        Decimal places, per column when a mapping (missing columns: 2; for a
        two-level column index the key may be the last level's name).
    columns : mapping, optional
        Explicit human names for some columns (original name -> shown name).
    values : mapping, optional
        Column (or index level, or column level) name -> callable or dict relabelling
        its values.
    directions : mapping, optional
        Words for the ``q2g``/``g2q`` prefixes, e.g. ``{"q2g": "text→code"}``.
    index : bool, optional
        Show the index; default: when it is not a plain ``RangeIndex``.
    pm : bool or mapping, default False
        Show a mean and its standard deviation in one cell, ``47.5 ± 1.2``: a mapping
        from a mean column to its sd column, or ``True`` for every column ``X`` that
        has an ``X sd`` (or ``X_sd``) partner. The sd columns are not shown apart.
    links : iterable, optional
        Columns whose values are book labels (``sec-...``, ``fig-...``, ``tbl-...``):
        shown as cross-references, which the book turns into numbered links (other
        values, such as words, are shown as they are).
    highlight : {"max", "min"}, optional
        Bold the largest (smallest) number of each numeric column.

    Returns
    -------
    Table

    Examples
    --------
    >>> import pandas as pd
    >>> t = table(pd.DataFrame({"method": ["is-g"], "q2g_R@1": [47.4567], "n": [3000]}),
    ...           decimals=1)
    >>> print(repr(t))  # doctest: +NORMALIZE_WHITESPACE
               method R@1, query→gallery     n
    IS (gallery bank)               47.5 3,000
    >>> print(repr(table(pd.DataFrame({"R@1": [47.46], "R@1 sd": [1.234]}), pm=True)))
    ... # doctest: +NORMALIZE_WHITESPACE
              R@1
    47.46 ± 1.23
    """
    import pandas as pd

    from hubrepro.normalize.variants import variant_label

    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"table: `df` must be a pandas DataFrame; got {type(df).__name__}. "
            "Build the table from the driver's DataFrame."
        )
    if highlight not in (None, "max", "min"):
        raise ValueError(
            f"table: `highlight` must be 'max', 'min' or None; got {highlight!r}."
        )
    show_index = (
        not isinstance(df.index, pd.RangeIndex) if index is None else bool(index)
    )
    relabel: dict[Any, Any] = {"method": variant_label, "label": variant_label}
    relabel.update(values or {})
    multi = isinstance(df.columns, pd.MultiIndex)
    cols = list(df.columns)
    pairs: dict[Any, Any] = {}
    if pm is True:
        pairs = {c: p for c in cols if (p := _sd_partner(c, cols)) is not None}
    elif pm:
        pairs = dict(pm)
    shown = [c for c in cols if c not in set(pairs.values())]
    link_cols = set(links)

    def places(col: Any) -> int:
        if isinstance(decimals, Mapping):
            if col in decimals:
                return int(decimals[col])
            if isinstance(col, tuple) and col and col[-1] in decimals:
                return int(decimals[col[-1]])
            return 2
        return int(decimals)

    def mapped(series: Any, name: Any) -> Any:
        f = relabel.get(name)
        if f is None and isinstance(name, tuple):
            f = relabel.get(name[-1])
        if f is None:
            return series
        return series.map(f if callable(f) else lambda v, f=f: f.get(v, v))

    out = pd.DataFrame(index=df.index)
    numeric = pd.DataFrame(index=df.index)
    bold = pd.DataFrame(False, index=df.index, columns=range(len(shown)))
    for j, col in enumerate(shown):
        series = mapped(df[col], col)
        cells = [_fmt_value(v, places(col)) for v in series]
        if col in pairs:
            sds = df[pairs[col]]
            cells = [
                c if pd.isna(sd) or c == "—" else f"{c} ± {float(sd):.{places(col)}f}"
                for c, sd in zip(cells, sds, strict=True)
            ]
        out[j] = cells
        numeric[j] = [_is_number(v) for v in series]
        if highlight is not None:
            nums = pd.to_numeric(df[col], errors="coerce")
            if nums.notna().any() and numeric[j].any():
                target = nums.max() if highlight == "max" else nums.min()
                bold[j] = (nums == target).to_numpy()

    def col_name(c: Any) -> str:
        if columns and c in columns:
            return columns[c]
        return column_label(c, directions)

    if multi:
        tuples = []
        for c in shown:
            if columns and c in columns:
                tuples.append((*(str(x) for x in c[:-1]), columns[c]))
                continue
            parts = []
            for level, value in enumerate(c):
                f = relabel.get(df.columns.names[level])
                if f is not None:
                    value = f(value) if callable(f) else f.get(value, value)
                parts.append(col_name(value))
            tuples.append(tuple(parts))
        out.columns = pd.MultiIndex.from_tuples(tuples)
    else:
        out.columns = [col_name(c) for c in shown]
    numeric.columns = out.columns
    bold.columns = out.columns
    shown_links = [out.columns[j] for j, c in enumerate(shown) if c in link_cols]
    if show_index:
        idx = out.index.to_frame(index=False)
        for col in idx.columns:
            vals = mapped(idx[col], col)
            idx[col] = [_fmt_value(v, places(col)) for v in vals]
        idx.columns = [
            None if c is None else (columns or {}).get(c, column_label(c, directions))
            for c in idx.columns
        ]
        out.index = (
            pd.MultiIndex.from_frame(idx)
            if idx.shape[1] > 1
            else pd.Index(idx.iloc[:, 0], name=idx.columns[0])
        )
        numeric.index = bold.index = out.index
    return Table(
        out,
        df,
        show_index,
        numeric=numeric,
        links=shown_links,
        bold=bold if highlight is not None else None,
    )
