"""The torchvision shim and device resolution."""

import subprocess
import sys

import pytest
import torch

from hubrepro._compat import resolve_device


def test_torchvision_and_open_clip_import_after_the_shim():
    # a fresh interpreter: the shim must work before anything imported torchvision
    code = "from hubrepro._compat import ensure_torchvision; assert ensure_torchvision(); import open_clip; print('ok')"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[
        -2000:
    ]


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch.cuda.is_available\\(\\) is False"):
            resolve_device("cuda")
