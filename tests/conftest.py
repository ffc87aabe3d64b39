"""Shared fixtures: a sweepable seed, dtypes and device from the environment.

- ``HUBREPRO_TEST_SEED``: an integer (default 0), ``a-b`` (a range), ``any`` (a
  random seed, printed in the header) or ``all`` (0-9). Tests taking ``seed``
  must pass for every seed.
- ``HUBREPRO_TEST_DTYPES``: comma-separated torch dtypes (default ``float32,float64``).
- ``HUBREPRO_TEST_DEVICE``: ``cpu`` (default) or ``cuda``.
"""

from __future__ import annotations

import os
import random

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def _seeds() -> list[int]:
    spec = os.environ.get("HUBREPRO_TEST_SEED", "0")
    if spec == "any":
        return [random.SystemRandom().randrange(2**31)]
    if spec == "all":
        return list(range(10))
    if "-" in spec:
        a, b = spec.split("-", 1)
        return list(range(int(a), int(b) + 1))
    return [int(spec)]


SEEDS = _seeds()
DTYPES = [
    getattr(torch, d.strip())
    for d in os.environ.get("HUBREPRO_TEST_DTYPES", "float32,float64").split(",")
]
DEVICE = torch.device(os.environ.get("HUBREPRO_TEST_DEVICE", "cpu"))


def pytest_report_header(config):
    return [
        f"hubrepro: seeds={SEEDS} dtypes={[str(d) for d in DTYPES]} device={DEVICE}"
    ]


@pytest.fixture(params=SEEDS, ids=lambda s: f"seed{s}")
def seed(request) -> int:
    return request.param


@pytest.fixture
def generator(seed) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(params=DTYPES, ids=str)
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture
def device() -> torch.device:
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("HUBREPRO_TEST_DEVICE=cuda but no GPU is available")
    return DEVICE


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one torch thread (small tensors on shared 2-core CPUs), then restore."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
