"""FIFO memory bank: order, capacity, detaching, state round trip, bad inputs."""

from __future__ import annotations

import pytest
import torch

from hubrepro.memory_bank import FIFOBank


def _push(bank, start, n, d=3):
    idx = torch.arange(start, start + n)
    bank.push_front(
        {
            "query": idx[:, None].float().expand(n, d),
            "gallery": -idx[:, None].float().expand(n, d),
        },
        idx,
    )


def test_fifo_order_and_capacity():
    bank = FIFOBank(5)
    assert len(bank) == 0 and bank.get("query") is None
    _push(bank, 0, 2)
    _push(bank, 10, 2)
    assert bank.indices.tolist() == [10, 11, 0, 1]
    _push(bank, 20, 3)  # 7 rows pushed, capacity 5: the two oldest (0, 1) fall off
    assert bank.indices.tolist() == [20, 21, 22, 10, 11]
    assert bank.get("query")[:, 0].tolist() == [20, 21, 22, 10, 11]
    assert bank.get("gallery")[:, 0].tolist() == [-20, -21, -22, -10, -11]
    _push(bank, 30, 8)  # a batch larger than the bank keeps its first rows
    assert bank.indices.tolist() == [30, 31, 32, 33, 34]


def test_fill_and_clear():
    bank = FIFOBank(4)
    _push(bank, 100, 4)
    batches = [
        ({"query": torch.zeros(2, 3)}, torch.tensor([0, 1])),
        ({"query": torch.ones(2, 3)}, torch.tensor([2, 3])),
    ]
    bank.fill(batches)
    assert bank.names == ("query",)
    assert bank.indices.tolist() == [2, 3, 0, 1]
    bank.clear()
    assert len(bank) == 0 and bank.names == ()


def test_rows_are_detached_copies():
    x = torch.randn(3, 2, requires_grad=True)
    y = x * 2
    bank = FIFOBank(3)
    bank.push_front({"query": y}, None)
    stored = bank.get("query")
    assert not stored.requires_grad
    assert bank.indices.tolist() == [-1, -1, -1]
    before = stored.clone()
    with torch.no_grad():
        x.add_(1.0)
    assert torch.equal(bank.get("query"), before)


def test_state_dict_round_trip_is_independent():
    bank = FIFOBank(6)
    _push(bank, 0, 4)
    state = bank.state_dict()
    other = FIFOBank(1)
    other.load_state_dict(state)
    assert other.capacity == 6 and torch.equal(other.indices, bank.indices)
    _push(bank, 50, 1)
    assert other.indices.tolist() == [0, 1, 2, 3]
    assert torch.equal(other.get("gallery"), state["features"]["gallery"])


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda b: b.push_front(
                {"query": torch.zeros(2, 3), "gallery": torch.zeros(2, 3)},
                torch.arange(3),
            ),
            ValueError,
            "indices",
        ),
        (
            lambda b: b.push_front(
                {"query": torch.zeros(2, 3), "gallery": torch.zeros(3, 3)}
            ),
            ValueError,
            "same number of rows",
        ),
        (lambda b: b.push_front({}), TypeError, "non-empty mapping"),
        (lambda b: b.push_front({"query": torch.zeros(2, 3)}), ValueError, "names"),
        (
            lambda b: b.push_front(
                {"query": torch.zeros(2, 4), "gallery": torch.zeros(2, 3)}
            ),
            ValueError,
            "rows of shape",
        ),
        (lambda b: b.get("nope"), ValueError, "one of"),
    ],
)
def test_bad_inputs(call, exc, match):
    bank = FIFOBank(4)
    _push(bank, 0, 2)
    with pytest.raises(exc, match=match):
        call(bank)


def test_bad_capacity():
    with pytest.raises(ValueError, match="capacity"):
        FIFOBank(0)
    with pytest.raises(TypeError, match="capacity"):
        FIFOBank(2.5)
