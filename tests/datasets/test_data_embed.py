"""The MiniLM text-embedding path and its per-item on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hubrepro.datasets import embed

TEXTS = [
    "Return the sum of two numbers.",
    "def add(a, b):\n    return a + b",
    "Open a network socket and connect to the host.",
    "Return the sum of two numbers.",  # duplicate
]


class CountingEncoder:
    """Wraps the real encoder and records what it is asked to encode."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[list[str]] = []

    def encode(self, texts, **kw):
        self.calls.append(list(texts))
        return self.inner.encode(texts, **kw)


@pytest.fixture
def counting(monkeypatch):
    real = embed.load_text_encoder()
    enc = CountingEncoder(real)
    monkeypatch.setattr(embed, "load_text_encoder", lambda *a, **k: enc)
    return enc


def test_num_threads_sets_and_restores():
    old = torch.get_num_threads()
    with embed.num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == old
    with pytest.raises(RuntimeError), embed.num_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == old
    with embed.num_threads(None):
        assert torch.get_num_threads() == old


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HUBREPRO_CACHE", str(tmp_path / "env"))
    assert embed.cache_dir() == tmp_path / "env"
    assert embed.cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("HUBREPRO_CACHE")
    assert embed.cache_dir().parts[-2:] == (".cache", "hubrepro")


def test_encode_texts_caches_per_item(counting, tmp_path):
    emb = embed.encode_texts(TEXTS, cache=tmp_path, progress=False)
    assert emb.shape == (4, 384) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(emb[0], emb[3])
    # duplicates are encoded once
    assert sorted(sum(counting.calls, [])) == sorted(set(TEXTS))
    # a paraphrase pair is closer than an unrelated pair
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2])
    assert embed.cached_count(TEXTS, cache=tmp_path) == 3
    # second call: nothing re-encoded, identical result
    counting.calls.clear()
    again = embed.encode_texts(TEXTS, cache=tmp_path, progress=False)
    assert counting.calls == []
    torch.testing.assert_close(again, emb, rtol=0, atol=0)
    # a superset encodes only the new text
    new = "Parse a date string in ISO format."
    embed.encode_texts([*TEXTS, new], cache=tmp_path, progress=False)
    assert counting.calls == [[new]]


def test_corrupt_cache_entry_is_reencoded(counting, tmp_path):
    embed.encode_texts(TEXTS[:1], cache=tmp_path, progress=False)
    entry = embed._entry(tmp_path, embed.DEFAULT_MODEL, TEXTS[0])
    good = np.load(entry)
    entry.write_bytes(b"not an npy file")
    counting.calls.clear()
    out = embed.encode_texts(TEXTS[:1], cache=tmp_path, progress=False)
    assert counting.calls == [[TEXTS[0]]]
    np.testing.assert_allclose(out[0].numpy(), good, atol=1e-5)
    # no temporary files are left behind by the atomic writes
    assert not list(tmp_path.rglob("*.tmp*"))


def test_encode_texts_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="`texts` must be a sequence of strings"):
        embed.encode_texts("just one string", cache=tmp_path)
    with pytest.raises(TypeError, match="position 1"):
        embed.encode_texts(["a", 3], cache=tmp_path)
    with pytest.raises(ValueError, match="`model`"):
        embed.load_text_encoder("bert-base")
    assert embed.encode_texts([], cache=tmp_path).shape == (0, 384)


def test_load_stdlib_code_subset_embeds_only_what_it_needs(counting, tmp_path):
    from hubrepro.datasets import load_dataset

    data = load_dataset(
        "stdlib-code", seed=0, n_query=4, n_bank=3, cache_dir=tmp_path, progress=False
    )
    assert data.query.shape == (4, 384) and data.bank_gallery.shape == (3, 384)
    encoded = sum(counting.calls, [])
    assert len(encoded) <= 2 * (4 + 3)  # nothing beyond the subset
    # rows are the embeddings of their own texts, in order
    again = embed.encode_texts(
        [*data.query_text, *data.bank_gallery_text], cache=tmp_path, progress=False
    )
    torch.testing.assert_close(again[:4], data.query)
    torch.testing.assert_close(again[4:], data.bank_gallery)
    assert not set(data.meta["test_ids"]) & set(data.meta["bank_ids"])
    assert data.meta["protocol"] == "random" and len(data.meta["data_sha256"]) == 64
    # a larger subset of the same split starts with the same pairs (the split is seeded)
    bigger = load_dataset(
        "stdlib-code", seed=0, n_query=6, n_bank=3, cache_dir=tmp_path, progress=False
    )
    assert bigger.meta["test_ids"][:4] == data.meta["test_ids"]
    with pytest.raises(ValueError, match="`protocol` must be one of"):
        load_dataset("stdlib-code", protocol="by-file", n_query=2, cache_dir=tmp_path)
