r"""Trainable projection heads on frozen embeddings: the CPU reproduction's dual encoder.

The model of the book's heads-on-frozen-features reproduction
(:ref:`sec-neighborretr`): per modality, an MLP :math:`D\to h\to d` gives an
L2-normalised *local* vector (the stand-in for NeighborRetr's token-level WTI branch,
whose one-token case is the cosine) and a linear map gives an **unnormalised**
*global* vector (the stand-in for the merged CTM path of ``lin2025neighborretr``).
A learnable logit scale :math:`\lambda` is clamped to ``logit_scale_max`` as in CLIP
(``radford2021learning``).

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hubrepro import _validation as V

__all__ = ["DualEncoderHeads", "OpenCLIPDualEncoder", "load_openclip"]


class _Branch(nn.Module):
    def __init__(
        self, in_dim: int, hidden_dim: int, embed_dim: int, global_dim: int
    ) -> None:
        super().__init__()
        self.local = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, embed_dim)
        )
        self.glob = nn.Linear(in_dim, global_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.normalize(self.local(x), dim=-1), self.glob(x)


class DualEncoderHeads(nn.Module):
    r"""Two trainable heads (query and gallery modality) on frozen embeddings.

    Parameters
    ----------
    query_dim, gallery_dim : int
        Input embedding sizes :math:`D_q`, :math:`D_g`.
    hidden_dim : int, default 512
        Hidden width :math:`h` of the local MLPs.
    embed_dim : int, default 128
        Size :math:`d` of the L2-normalised local vectors.
    global_dim : int, default 128
        Size of the unnormalised global vectors.
    logit_scale_init : float, default 1/0.07
        Initial :math:`\lambda` (CLIP's initial temperature 0.07).
    logit_scale_max : float, default 100.0
        Clamp of :math:`\lambda` (CLIP and the official NeighborRetr code).
    learn_logit_scale : bool, default True
        Learn :math:`\log\lambda`; ``False`` keeps it fixed.

    Notes
    -----
    ``forward(query, gallery)`` returns a dict with ``query_local``,
    ``gallery_local`` (unit rows), ``query_global`` and ``gallery_global``.
    Book: :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> m = DualEncoderHeads(8, 6, hidden_dim=16, embed_dim=4, global_dim=3)
    >>> out = m(torch.randn(5, 8), torch.randn(5, 6))
    >>> tuple(out["query_local"].shape), tuple(out["gallery_global"].shape)
    ((5, 4), (5, 3))
    """

    def __init__(
        self,
        query_dim: int,
        gallery_dim: int,
        *,
        hidden_dim: int = 512,
        embed_dim: int = 128,
        global_dim: int = 128,
        logit_scale_init: float = 1 / 0.07,
        logit_scale_max: float = 100.0,
        learn_logit_scale: bool = True,
    ) -> None:
        super().__init__()
        func = "DualEncoderHeads"
        dims = {
            n: V.check_int(v, n, func, low=1)
            for n, v in (
                ("query_dim", query_dim),
                ("gallery_dim", gallery_dim),
                ("hidden_dim", hidden_dim),
                ("embed_dim", embed_dim),
                ("global_dim", global_dim),
            )
        }
        self.logit_scale_max = V.check_positive(
            logit_scale_max, "logit_scale_max", func
        )
        init = V.check_positive(logit_scale_init, "logit_scale_init", func)
        self.query = _Branch(
            dims["query_dim"], dims["hidden_dim"], dims["embed_dim"], dims["global_dim"]
        )
        self.gallery = _Branch(
            dims["gallery_dim"],
            dims["hidden_dim"],
            dims["embed_dim"],
            dims["global_dim"],
        )
        self.log_logit_scale = nn.Parameter(
            torch.tensor(math.log(init)), requires_grad=bool(learn_logit_scale)
        )

    def logit_scale(self) -> torch.Tensor:
        r"""Return :math:`\lambda = \min(e^{\log\lambda}, \lambda_{\max})` (a scalar tensor)."""
        return self.log_logit_scale.exp().clamp(max=self.logit_scale_max)

    def encode_query(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(local, global)`` features of query embeddings ``x`` (n, query_dim)."""
        return self.query(x)

    def encode_gallery(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(local, global)`` features of gallery embeddings ``x`` (n, gallery_dim)."""
        return self.gallery(x)

    def forward(
        self, query: torch.Tensor, gallery: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Encode a batch of both modalities; see the class notes for the keys."""
        ql, qg = self.query(query)
        gl, gg = self.gallery(gallery)
        return {
            "query_local": ql,
            "query_global": qg,
            "gallery_local": gl,
            "gallery_global": gg,
        }


class OpenCLIPDualEncoder(nn.Module):
    r"""An open_clip CLIP model as a dual encoder for :func:`hubrepro.training.train`.

    The GPU path of the reproduction (:ref:`sec-neighborretr`, "The full-scale
    recipe"): the whole CLIP
    (``radford2021learning``) is fine-tuned. Queries are token ids (text), gallery items
    are images. The *local* vector is the L2-normalised CLIP embedding (the similarity
    used for retrieval) and the *global* vector the same embedding unnormalised, so
    that :math:`G` is a raw dot product as in the official code.

    Parameters
    ----------
    clip : open_clip ``CLIP`` module
        Built with :func:`load_openclip` or ``open_clip.create_model``.
    logit_scale_max : float, default 100.0
        Clamp of the model's learnt logit scale.

    Notes
    -----
    Token-level WTI and token merging of the official model are not reproduced; this
    wrapper uses CLIP's pooled embeddings. Book: :ref:`sec-neighborretr`.
    """

    def __init__(self, clip: nn.Module, *, logit_scale_max: float = 100.0) -> None:
        super().__init__()
        for name in ("encode_text", "encode_image", "logit_scale"):
            if not hasattr(clip, name):
                V.fail(
                    "OpenCLIPDualEncoder",
                    "clip",
                    f"an open_clip CLIP model (with `{name}`)",
                    type(clip).__name__,
                    exc=TypeError,
                )
        self.clip = clip
        self.logit_scale_max = V.check_positive(
            logit_scale_max, "logit_scale_max", "OpenCLIPDualEncoder"
        )

    def logit_scale(self) -> torch.Tensor:
        r"""Return :math:`\lambda = \min(e^{\log\lambda}, \lambda_{\max})`."""
        return self.clip.logit_scale.exp().clamp(max=self.logit_scale_max)

    def encode_query(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(local, global)`` features of token ids ``(n, context_length)``."""
        g = self.clip.encode_text(tokens)
        return F.normalize(g, dim=-1), g

    def encode_gallery(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(local, global)`` features of images ``(n, 3, H, W)``."""
        g = self.clip.encode_image(images)
        return F.normalize(g, dim=-1), g

    def forward(
        self, query: torch.Tensor, gallery: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Encode a batch of both modalities (keys as :class:`DualEncoderHeads`)."""
        ql, qg = self.encode_query(query)
        gl, gg = self.encode_gallery(gallery)
        return {
            "query_local": ql,
            "query_global": qg,
            "gallery_local": gl,
            "gallery_global": gg,
        }


def load_openclip(
    model_name: str = "ViT-B-32", *, pretrained: str | None = None, device: str = "cpu"
) -> nn.Module:
    """Create an open_clip model from **local** weights (or random init); never downloads.

    Parameters
    ----------
    model_name : str, default "ViT-B-32"
        An open_clip architecture name.
    pretrained : str or None
        Path of a local checkpoint file; ``None`` gives random initialisation.
    device : str, default "cpu"

    Raises
    ------
    ValueError
        If ``pretrained`` is not an existing file (hub tags such as ``"openai"`` would
        trigger a download and are refused).
    ModuleNotFoundError
        If open_clip is not installed (``pip install hubrepro[clip]``).
    """
    from pathlib import Path

    from hubrepro._compat import ensure_torchvision

    if pretrained is not None and not Path(pretrained).is_file():
        V.fail(
            "load_openclip",
            "pretrained",
            "the path of a local weights file",
            repr(pretrained),
            "hubrepro never downloads weights; download them yourself and pass the file.",
        )
    ensure_torchvision()
    import open_clip

    return open_clip.create_model(model_name, pretrained=pretrained, device=device)
