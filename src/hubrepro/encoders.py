r"""Small dual encoders trained from scratch: an image tower and a text tower.

NeighborRetr (``lin2025neighborretr``) trains CLIP-style dual encoders
(``radford2021learning``); the CPU reproduction of :ref:`sec-neighborretr` trains these
two small towers end to end on the ``shapes-world`` images and captions
(:mod:`hubrepro.datasets.shapes_world`):

- :class:`ImageEncoder` -- a convolutional network: stride-2 stages of
  ``Conv 3x3 -> GroupNorm -> GELU`` (optionally followed by residual blocks) turn an
  :math:`S \times S` image into an :math:`(S/2^n)^2` grid of *patch tokens* (the
  image counterpart of NeighborRetr's frame tokens);
- :class:`TextEncoder` -- token and position embeddings and one or two pre-norm
  self-attention layers with a padding mask give one state per word token.

Each tower projects its token states into the shared space (``tokens``), averages
them over the valid tokens and returns, as :class:`~hubrepro.heads.DualEncoderHeads`
does, an L2-normalised **local** vector (the retrieval vector: the cosine of two local
vectors is :math:`S`; it equals the normalised mean of the token projections) and an
unnormalised **global** vector from a separate linear map of the pooled state (the
:math:`G` of :math:`L_{\rm Opt}` and :math:`L_{\rm KL}`). :class:`DualEncoder` pairs
the towers with the logit scale :math:`\lambda` and has the interface the trainer
uses (``encode_query``, ``encode_gallery``, ``forward``, ``logit_scale``); with
``return_tokens=True`` it also returns the projected tokens and their masks, the
inputs of :func:`hubrepro.losses.wti_similarity` and of token-level
:func:`hubrepro.losses.centrality`.

Queries are token ids (``LongTensor (n, L)``, padding id 0, the mask is derived from
it); gallery items are images (``uint8`` in [0, 255] or floating in [0, 1],
``(n, 3, S, S)``). Everything is ``torch.nn``; device-agnostic; floating inputs and
outputs follow the parameters' dtype; under ``torch.autocast`` on CUDA the towers run in
half precision. Runs are bit-identical on CPU under a seed
(:func:`hubrepro.training.seed_everything`). ``torch.compile(model)`` works but is
optional.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from hubrepro import _validation as V

__all__ = [
    "EncoderConfig",
    "TowerOutput",
    "ImageEncoder",
    "TextEncoder",
    "DualEncoder",
    "build_dual_encoder",
]

# per-channel normalisation of [0, 1] images (the midpoint and spread of the palette)
_PIXEL_MEAN = 0.5
_PIXEL_STD = 0.25


class TowerOutput(NamedTuple):
    """What one tower returns for a batch of ``n`` inputs."""

    #: Tensor of shape (n, embed_dim): the L2-normalised retrieval vector.
    local: torch.Tensor
    #: Tensor of shape (n, embed_dim): the global vector (unnormalised by default).
    global_: torch.Tensor
    #: Tensor of shape (n, n_tokens, embed_dim): token states in the shared space.
    tokens: torch.Tensor
    #: BoolTensor of shape (n, n_tokens): ``True`` at valid tokens.
    mask: torch.Tensor


def _pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``states`` (n, T, C) over the valid tokens of ``mask`` (n, T)."""
    w = mask.to(states.dtype)[..., None]
    return (states * w).sum(1) / w.sum(1).clamp_min(1.0)


class _Heads(nn.Module):
    """Token projection (local and tokens) and global map of a tower."""

    def __init__(self, width: int, embed_dim: int, global_norm: float | None) -> None:
        super().__init__()
        self.proj = nn.Linear(width, embed_dim)
        self.glob = nn.Linear(width, embed_dim)
        self.global_norm = global_norm

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> TowerOutput:
        pooled = _pool(states, mask)
        glob = self.glob(pooled)
        if self.global_norm is not None:
            glob = self.global_norm * F.normalize(glob, dim=-1)
        return TowerOutput(
            F.normalize(self.proj(pooled), dim=-1), glob, self.proj(states), mask
        )


def _check_global_norm(x: float | None, func: str) -> float | None:
    return None if x is None else V.check_positive(x, "global_norm", func)


def _groups(channels: int) -> int:
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(_groups(c), c)
    if kind == "batch":
        return nn.BatchNorm2d(c)
    return nn.Identity()


class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.norm = nn.GroupNorm(_groups(c), c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.norm(self.conv(x)))


class ImageEncoder(nn.Module):
    r"""A small CNN image tower with patch tokens.

    Parameters
    ----------
    image_size : int, default 32
        Side :math:`S` of the (square) input images; divisible by ``2**len(channels)``.
    channels : sequence of int, default (32, 64, 128)
        Widths of the stride-2 stages; the last is the token width.
    blocks : int, default 0
        Residual ``Conv 3x3`` blocks after each stage.
    embed_dim : int, default 64
        Size of the shared space.
    norm : {"group", "batch", "none"}, default "group"
        Normalisation after each convolution (group norm keeps samples independent
        of their batch).
    position_mlp : bool, default True
        Add a learnt position to each patch token and bind it to the content with a
        token-wise MLP, so that the mean over tokens keeps where things are.
    global_norm : float or None, default None
        ``None``: the global vector is a free linear map of the pooled state (its
        scale is learnt); a number :math:`r`: global vectors have norm :math:`r`, so
        :math:`G = r^2 \cos` (CLIP's unnormalised embeddings have norms near 10).

    Notes
    -----
    ``forward(images)`` returns a :class:`TowerOutput` with
    :math:`(S/2^{n})^2` tokens (row-major grid cells), all valid.

    Examples
    --------
    >>> import torch
    >>> enc = ImageEncoder(image_size=16, channels=(8, 16), embed_dim=4)
    >>> out = enc(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    >>> tuple(out.local.shape), tuple(out.tokens.shape)
    ((2, 4), (2, 16, 4))
    """

    def __init__(
        self,
        *,
        image_size: int = 32,
        channels: tuple[int, ...] | list[int] = (32, 64, 128),
        blocks: int = 0,
        embed_dim: int = 64,
        norm: str = "group",
        position_mlp: bool = True,
        global_norm: float | None = None,
    ) -> None:
        super().__init__()
        func = "ImageEncoder"
        channels = tuple(channels)
        if not channels:
            V.fail(func, "channels", "at least one stage width", channels)
        for c in channels:
            V.check_int(c, "channels", func, low=1)
        self.image_size = V.check_int(image_size, "image_size", func, low=2)
        if image_size % (2 ** len(channels)):
            V.fail(
                func,
                "image_size",
                f"divisible by 2**{len(channels)} (one halving per stage)",
                image_size,
            )
        blocks = V.check_int(blocks, "blocks", func, low=0)
        norm = V.check_choice(norm, "norm", func, ("group", "batch", "none"))
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [
                nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=norm == "none"),
                _norm(norm, c),
                nn.GELU(),
            ]
            layers += [_Residual(c) for _ in range(blocks)]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.n_tokens = (image_size // 2 ** len(channels)) ** 2
        # a learnt position per grid cell, bound to the content by a token-wise MLP, so
        # that the mean over tokens keeps "what is where" (captions state positions)
        self.position = (
            nn.Parameter(torch.zeros(self.n_tokens, c_in)) if position_mlp else None
        )
        self.mixer = (
            nn.Sequential(
                nn.LayerNorm(c_in),
                nn.Linear(c_in, 2 * c_in),
                nn.GELU(),
                nn.Linear(2 * c_in, c_in),
            )
            if position_mlp
            else None
        )
        if self.position is not None:
            nn.init.normal_(self.position, std=0.02)
        self.heads = _Heads(
            c_in,
            V.check_int(embed_dim, "embed_dim", func, low=1),
            _check_global_norm(global_norm, func),
        )

    def forward(self, images: torch.Tensor) -> TowerOutput:
        """Encode ``images`` ``(n, 3, S, S)`` (uint8 in [0, 255] or floating in [0, 1])."""
        size = self.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            V.fail(
                "ImageEncoder",
                "images",
                f"of shape (n, 3, {size}, {size})",
                f"shape {tuple(images.shape)}",
                "Build the encoder with the images' size (`image_size`).",
            )
        dtype = self.heads.proj.weight.dtype
        x = images.to(dtype)
        if images.dtype == torch.uint8:
            x = x / 255.0
        x = (x - _PIXEL_MEAN) / _PIXEL_STD
        fmap = self.body(x)  # (n, C, h, w)
        states = fmap.flatten(2).transpose(1, 2)  # (n, h*w, C)
        if self.mixer is not None:
            states = states + self.position
            states = states + self.mixer(states)
        mask = torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
        return self.heads(states, mask)


class _AttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width),
            nn.GELU(),
            nn.Linear(mlp_ratio * width, width),
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        q, k, v = (
            self.qkv(self.norm1(x))
            .reshape(n, length, 3, self.heads, width // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        # `keep` (n, 1, 1, L): padded keys are never attended to
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        x = x + self.out(a.transpose(1, 2).reshape(n, length, width))
        return x + self.mlp(self.norm2(x))


class TextEncoder(nn.Module):
    r"""A small text tower: embeddings and pre-norm self-attention over word tokens.

    Parameters
    ----------
    vocab_size : int
        Number of token ids (id 0 is padding).
    max_len : int
        Longest caption in tokens (size of the position table).
    width : int, default 64
        Model width.
    layers : int, default 1
        Self-attention layers (0 gives a bag of embeddings with positions).
    heads : int, default 4
        Attention heads; divides ``width``.
    embed_dim : int, default 64
        Size of the shared space.
    pad_id : int, default 0
        The padding id; the mask is ``ids != pad_id``.
    global_norm : float or None, default None
        As in :class:`ImageEncoder`.

    Examples
    --------
    >>> import torch
    >>> enc = TextEncoder(10, 5, width=8, heads=2, embed_dim=4)
    >>> out = enc(torch.tensor([[3, 4, 0, 0, 0], [5, 6, 7, 8, 9]]))
    >>> out.mask.sum(1).tolist(), tuple(out.tokens.shape)
    ([2, 5], (2, 5, 4))
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        *,
        width: int = 64,
        layers: int = 1,
        heads: int = 4,
        embed_dim: int = 64,
        pad_id: int = 0,
        global_norm: float | None = None,
    ) -> None:
        super().__init__()
        func = "TextEncoder"
        self.vocab_size = V.check_int(vocab_size, "vocab_size", func, low=2)
        self.max_len = V.check_int(max_len, "max_len", func, low=1)
        width = V.check_int(width, "width", func, low=1)
        heads = V.check_int(heads, "heads", func, low=1)
        if width % heads:
            V.fail(func, "heads", f"a divisor of width {width}", heads)
        self.pad_id = V.check_int(pad_id, "pad_id", func, low=0, high=vocab_size - 1)
        self.token = nn.Embedding(vocab_size, width, padding_idx=pad_id)
        self.position = nn.Parameter(torch.zeros(max_len, width))
        nn.init.normal_(self.token.weight, std=width**-0.5)
        with torch.no_grad():
            self.token.weight[pad_id].zero_()
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(
            _AttentionBlock(width, heads)
            for _ in range(V.check_int(layers, "layers", func, low=0))
        )
        self.norm = nn.LayerNorm(width)
        self.heads = _Heads(
            width,
            V.check_int(embed_dim, "embed_dim", func, low=1),
            _check_global_norm(global_norm, func),
        )

    def forward(self, ids: torch.Tensor) -> TowerOutput:
        """Encode token ids ``(n, L)`` with ``L <= max_len`` (padding = ``pad_id``)."""
        func = "TextEncoder"
        if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32):
            V.fail(
                func,
                "ids",
                "an integer tensor of shape (n, L)",
                f"{ids.dtype} of shape {tuple(ids.shape)}",
                exc=TypeError if ids.ndim == 2 else ValueError,
            )
        if ids.shape[1] > self.max_len:
            V.fail(func, "ids", f"at most {self.max_len} tokens long", ids.shape[1])
        mask = ids != self.pad_id
        x = self.token(ids) + self.position[: ids.shape[1]]
        keep = mask[:, None, None, :]
        for block in self.blocks:
            x = block(x, keep)
        return self.heads(self.norm(x), mask)


class DualEncoder(nn.Module):
    r"""A text tower (queries) and an image tower (gallery) with a logit scale.

    The interface of :class:`~hubrepro.heads.DualEncoderHeads`, so the trainer and
    the NeighborRetr losses take it unchanged; a learnable logit scale :math:`\lambda`
    is clamped to ``logit_scale_max`` as in CLIP (``radford2021learning``).

    Parameters
    ----------
    text : TextEncoder
    image : ImageEncoder
        Both with the same ``embed_dim``.
    logit_scale_init : float, default 1/0.07
        Initial :math:`\lambda`.
    logit_scale_max : float, default 100.0
    learn_logit_scale : bool, default True
        ``False`` keeps :math:`\lambda` fixed (NeighborRetr's fixed scale 100).

    Notes
    -----
    ``forward(query, gallery)`` returns ``query_local``, ``query_global``,
    ``gallery_local``, ``gallery_global``; with ``return_tokens=True`` also
    ``query_tokens``, ``query_mask``, ``gallery_tokens``, ``gallery_mask``.
    Book: :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> m = build_dual_encoder(vocab_size=10, max_len=6, image_size=16,
    ...                        channels=(8, 16), text_width=8, text_heads=2, embed_dim=4)
    >>> out = m(torch.tensor([[2, 3, 0], [4, 0, 0]]), torch.zeros(2, 3, 16, 16))
    >>> sorted(out)
    ['gallery_global', 'gallery_local', 'query_global', 'query_local']
    """

    def __init__(
        self,
        text: TextEncoder,
        image: ImageEncoder,
        *,
        logit_scale_init: float = 1 / 0.07,
        logit_scale_max: float = 100.0,
        learn_logit_scale: bool = True,
    ) -> None:
        super().__init__()
        func = "DualEncoder"
        if not isinstance(text, TextEncoder) or not isinstance(image, ImageEncoder):
            V.fail(
                func,
                "text, image",
                "a TextEncoder and an ImageEncoder",
                f"{type(text).__name__}, {type(image).__name__}",
                exc=TypeError,
            )
        dq = text.heads.proj.out_features
        dg = image.heads.proj.out_features
        if dq != dg:
            V.fail(func, "image", f"of embed_dim {dq} (that of `text`)", dg)
        self.text = text
        self.image = image
        self.logit_scale_max = V.check_positive(
            logit_scale_max, "logit_scale_max", func
        )
        init = V.check_positive(logit_scale_init, "logit_scale_init", func)
        self.log_logit_scale = nn.Parameter(
            torch.tensor(math.log(init)), requires_grad=bool(learn_logit_scale)
        )

    @property
    def embed_dim(self) -> int:
        """Size of the shared space."""
        return int(self.text.heads.proj.out_features)

    def logit_scale(self) -> torch.Tensor:
        r"""Return :math:`\lambda = \min(e^{\log\lambda}, \lambda_{\max})` (a scalar tensor)."""
        return self.log_logit_scale.exp().clamp(max=self.logit_scale_max)

    def query_features(self, ids: torch.Tensor) -> TowerOutput:
        """All outputs of the text tower for token ids ``(n, L)``."""
        return self.text(ids)

    def gallery_features(self, images: torch.Tensor) -> TowerOutput:
        """All outputs of the image tower for images ``(n, 3, S, S)``."""
        return self.image(images)

    def encode_query(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(local, global)`` features of token ids ``(n, L)``."""
        out = self.text(ids)
        return out.local, out.global_

    def encode_gallery(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(local, global)`` features of images ``(n, 3, S, S)``."""
        out = self.image(images)
        return out.local, out.global_

    def forward(
        self, query: torch.Tensor, gallery: torch.Tensor, *, return_tokens: bool = False
    ) -> dict[str, torch.Tensor]:
        """Encode a batch of both modalities; see the class notes for the keys."""
        q, g = self.text(query), self.image(gallery)
        out = {
            "query_local": q.local,
            "query_global": q.global_,
            "gallery_local": g.local,
            "gallery_global": g.global_,
        }
        if return_tokens:
            out.update(
                query_tokens=q.tokens,
                query_mask=q.mask,
                gallery_tokens=g.tokens,
                gallery_mask=g.mask,
            )
        return out


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of :func:`build_dual_encoder` (field names equal notebook parameters)."""

    image_size: int = 32  # input side S
    channels: tuple[int, ...] = (32, 64, 128)  # CNN stage widths (each halves S)
    blocks: int = 0  # residual blocks per CNN stage
    norm: str = "group"  # CNN normalisation: "group", "batch" or "none"
    position_mlp: bool = True  # bind a learnt grid position to each patch token
    text_width: int = 64  # text tower width
    text_layers: int = 1  # self-attention layers
    text_heads: int = 4  # attention heads
    embed_dim: int = 64  # shared space
    global_norm: float | None = (
        None  # None: free global vectors; r: global vectors of norm r
    )
    logit_scale_init: float = 1 / 0.07  # initial lambda (CLIP)
    logit_scale_max: float = 100.0  # clamp of lambda
    learn_logit_scale: bool = True  # False: lambda fixed at its initial value


def build_dual_encoder(
    config: EncoderConfig | None = None,
    *,
    vocab_size: int,
    max_len: int,
    **options: object,
) -> DualEncoder:
    """Return a freshly initialised :class:`DualEncoder` (seed the RNG first).

    Parameters
    ----------
    config : EncoderConfig, optional
        The architecture; keyword ``options`` override its fields.
    vocab_size, max_len : int
        Of the tokenizer (e.g. ``len(world.vocab)``, ``world.meta["max_len"]``).
    **options
        Fields of :class:`EncoderConfig`.
    """
    from hubrepro.config import from_params, to_params

    cfg = config if config is not None else EncoderConfig()
    if not isinstance(cfg, EncoderConfig):
        V.fail(
            "build_dual_encoder",
            "config",
            "an EncoderConfig",
            type(cfg).__name__,
            exc=TypeError,
        )
    if options:
        cfg = from_params(EncoderConfig, {**to_params(cfg), **options})
    text = TextEncoder(
        vocab_size,
        max_len,
        width=cfg.text_width,
        layers=cfg.text_layers,
        heads=cfg.text_heads,
        embed_dim=cfg.embed_dim,
        global_norm=cfg.global_norm,
    )
    image = ImageEncoder(
        image_size=cfg.image_size,
        channels=cfg.channels,
        blocks=cfg.blocks,
        embed_dim=cfg.embed_dim,
        norm=cfg.norm,
        position_mlp=cfg.position_mlp,
        global_norm=cfg.global_norm,
    )
    return DualEncoder(
        text,
        image,
        logit_scale_init=cfg.logit_scale_init,
        logit_scale_max=cfg.logit_scale_max,
        learn_logit_scale=cfg.learn_logit_scale,
    )
