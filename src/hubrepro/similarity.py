r"""Similarity matrices between embeddings, computed in bounded blocks.

The compendium compares a set of queries (rows) with a gallery (columns) by cosine
similarity or by the plain dot product:

.. math::

    S_{ij} = \frac{\langle q_i, g_j\rangle}{\max(\lVert q_i\rVert, \epsilon)\,
    \max(\lVert g_j\rVert, \epsilon)} \quad\text{(cosine)}, \qquad
    S_{ij} = \langle q_i, g_j\rangle \quad\text{(dot)}.

At benchmark scale (200k captions x 10k videos) the full matrix is large, so the
functions here work on blocks of query rows: :func:`iter_similarity_blocks` yields
one ``(chunk_size, n_gallery)`` block at a time and never holds more, and
:func:`similarity` fills a preallocated output block by block, so no temporary
larger than a block is created beside the result.

NumPy arrays are accepted wherever tensors are (they are wrapped without a copy)
and the results are always tensors on the input's device, in the input's dtype.

Book: :ref:`sec-hubness` (chapter "Hubness: a primer").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from hubrepro._validation import check_choice, check_int, check_matrix, fail

__all__ = [
    "METRICS",
    "l2_normalize",
    "similarity",
    "cosine_similarity",
    "iter_similarity_blocks",
    "default_chunk_size",
]

METRICS = ("cosine", "dot")

# Elements per block when the caller does not choose: 2**24 float32 values = 64 MiB
_BLOCK_ELEMENTS = 1 << 24
_EPS = 1e-12


def default_chunk_size(n_columns: int, *, max_elements: int = _BLOCK_ELEMENTS) -> int:
    """Return the number of rows per block so that a block has at most ``max_elements``.

    Parameters
    ----------
    n_columns : int
        Width of each block (the number of gallery items).
    max_elements : int, default 2**24
        Upper bound on ``rows * n_columns`` (64 MiB of float32).

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> default_chunk_size(1000)
    16777
    """
    return max(1, max_elements // max(1, int(n_columns)))


def l2_normalize(x: Any, *, eps: float = _EPS) -> torch.Tensor:
    r"""Scale every row of ``x`` to unit Euclidean norm.

    .. math:: \tilde x_i = x_i / \max(\lVert x_i\rVert_2, \epsilon)

    A zero row stays zero (its norm is clamped to ``eps``) instead of becoming NaN.

    Parameters
    ----------
    x : Tensor or ndarray of shape (n, d)
        Embeddings, one per row; floating point and finite.
    eps : float, default 1e-12
        Lower bound on the norm.

    Returns
    -------
    Tensor of shape (n, d)
        A new tensor, same device and dtype as ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point tensor or array.
    ValueError
        If ``x`` is not 2-D, is empty or holds NaN/inf.

    Book
    ----
    :ref:`sec-hubness`.

    Examples
    --------
    >>> import torch
    >>> l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    tensor([[0.6000, 0.8000],
            [0.0000, 0.0000]])
    """
    t = check_matrix(x, "x", "l2_normalize")
    return _normalize(t, eps)


def _normalize(t: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    # the norm is taken in at least float32 so float16 rows do not overflow
    work = t if t.dtype in (torch.float32, torch.float64) else t.float()
    norms = torch.linalg.vector_norm(work, dim=1, keepdim=True).clamp_min(eps)
    return (work / norms).to(t.dtype)


def _check_pair(
    func: str, query: Any, gallery: Any, metric: str
) -> tuple[torch.Tensor, torch.Tensor]:
    q = check_matrix(query, "query", func)
    g = check_matrix(gallery, "gallery", func)
    check_choice(metric, "metric", func, METRICS)
    if q.shape[1] != g.shape[1]:
        fail(
            func,
            "gallery",
            f"of dimension {q.shape[1]} (the embedding width of `query`)",
            f"shape {tuple(g.shape)}",
            "Both sets must live in the same embedding space.",
        )
    if q.dtype != g.dtype:
        fail(
            func,
            "gallery",
            f"of dtype {q.dtype} (the dtype of `query`)",
            f"dtype {g.dtype}",
            "Cast one of them explicitly.",
            exc=TypeError,
        )
    if q.device != g.device:
        fail(
            func,
            "gallery",
            f"on device {q.device} (the device of `query`)",
            f"device {g.device}",
        )
    return q, g


def _resolve_chunk(func: str, chunk_size: Any, n_rows: int, n_cols: int) -> int:
    if chunk_size is None:
        return default_chunk_size(n_cols)
    return min(check_int(chunk_size, "chunk_size", func, low=1), max(1, n_rows))


def _blocks(
    q: torch.Tensor, g: torch.Tensor, metric: str, chunk: int
) -> Iterator[tuple[int, torch.Tensor]]:
    if metric == "cosine":
        g = _normalize(g)
    gt = g.T
    for start in range(0, q.shape[0], chunk):
        rows = q[start : start + chunk]
        if metric == "cosine":
            rows = _normalize(rows)
        yield start, rows @ gt


def iter_similarity_blocks(
    query: Any,
    gallery: Any,
    *,
    metric: str = "cosine",
    chunk_size: int = 4096,
) -> Iterator[tuple[int, torch.Tensor]]:
    r"""Yield the similarity matrix between ``query`` and ``gallery`` block by block.

    Each step yields ``(start, block)`` where ``block`` is
    ``similarity(query[start:start + chunk_size], gallery)``, of shape
    ``(<= chunk_size, n_gallery)``. Only one block (plus, for cosine, one normalised
    copy of the gallery) is alive at a time, so a 200k x 10k problem runs in the
    memory of a ``chunk_size x 10k`` block.

    Parameters
    ----------
    query : Tensor or ndarray of shape (n_query, d)
        Query embeddings (rows of the result).
    gallery : Tensor or ndarray of shape (n_gallery, d)
        Gallery embeddings (columns), same dtype and device as ``query``.
    metric : {"cosine", "dot"}, default "cosine"
        Cosine similarity (rows L2-normalised first) or the raw dot product.
    chunk_size : int, default 4096
        Query rows per block.

    Yields
    ------
    start : int
        Index of the block's first query row.
    block : Tensor of shape (rows, n_gallery)
        A new tensor, same device and dtype as the inputs.

    Raises
    ------
    TypeError, ValueError
        On non-floating, non-finite, empty or mismatched inputs (checked before the
        first block is produced).

    See Also
    --------
    similarity : the whole matrix at once.

    Book
    ----
    :ref:`sec-hubness`.

    Examples
    --------
    >>> import torch
    >>> q = torch.eye(3)
    >>> [(s, b.shape) for s, b in iter_similarity_blocks(q, q, chunk_size=2)]
    [(0, torch.Size([2, 3])), (2, torch.Size([1, 3]))]
    """
    func = "iter_similarity_blocks"
    q, g = _check_pair(func, query, gallery, metric)
    chunk = _resolve_chunk(func, chunk_size, q.shape[0], g.shape[0])
    # validation happens eagerly; the generator below only computes
    return _blocks(q, g, metric, chunk)


def similarity(
    a: Any,
    b: Any,
    *,
    metric: str = "cosine",
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Compute the full similarity matrix between the rows of ``a`` and of ``b``.

    .. math::

        S_{ij} = \frac{\langle a_i, b_j\rangle}{\max(\lVert a_i\rVert,\epsilon)
        \max(\lVert b_j\rVert,\epsilon)} \ \text{(cosine)},\qquad
        S_{ij} = \langle a_i, b_j\rangle \ \text{(dot)}

    The output is filled block by block (``chunk_size`` rows of ``a`` at a time),
    so the only temporaries are one block and a normalised copy of ``b``.

    Parameters
    ----------
    a : Tensor or ndarray of shape (n_a, d)
        Row embeddings (queries).
    b : Tensor or ndarray of shape (n_b, d)
        Column embeddings (gallery); same dtype and device as ``a``.
    metric : {"cosine", "dot"}, default "cosine"
        Similarity function.
    chunk_size : int, optional
        Rows of ``a`` per block; by default blocks of at most 2**24 elements.

    Returns
    -------
    Tensor of shape (n_a, n_b)
        A new tensor on the device and in the dtype of ``a``. Chunked and unchunked
        results agree to floating-point rounding (the matrix-multiply kernel may
        sum in a different order for different block heights).

    Raises
    ------
    TypeError
        Non-floating inputs or different dtypes.
    ValueError
        Wrong ndim, empty, NaN/inf, different widths or devices, unknown metric.

    See Also
    --------
    iter_similarity_blocks : stream the blocks without keeping the whole matrix.
    cosine_similarity : shorthand for ``metric="cosine"``.

    Book
    ----
    :ref:`sec-hubness`.

    Examples
    --------
    >>> import torch
    >>> similarity(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    tensor([[1., 0.]])
    >>> similarity(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]]), metric="dot")
    tensor([[2.]])
    """
    func = "similarity"
    q, g = _check_pair(func, a, b, metric)
    chunk = _resolve_chunk(func, chunk_size, q.shape[0], g.shape[0])
    out = torch.empty((q.shape[0], g.shape[0]), dtype=q.dtype, device=q.device)
    for start, block in _blocks(q, g, metric, chunk):
        out[start : start + block.shape[0]] = block
        del block  # free this block before the generator computes the next one
    return out


def cosine_similarity(a: Any, b: Any, *, chunk_size: int | None = None) -> torch.Tensor:
    """Compute the cosine similarity matrix; shorthand for ``similarity(a, b, metric="cosine")``.

    Parameters
    ----------
    a : Tensor or ndarray of shape (n_a, d)
        Row embeddings.
    b : Tensor or ndarray of shape (n_b, d)
        Column embeddings.
    chunk_size : int, optional
        Rows of ``a`` per block.

    Returns
    -------
    Tensor of shape (n_a, n_b)
        Values in [-1, 1] up to rounding; device and dtype of ``a``.

    See Also
    --------
    similarity

    Book
    ----
    :ref:`sec-hubness`.

    Examples
    --------
    >>> import torch
    >>> cosine_similarity(torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0]]))
    tensor([[0.7071]])
    """
    return similarity(a, b, metric="cosine", chunk_size=chunk_size)
