"""environment.yml (conda users) agrees with pyproject.toml, and the constraints pin torch."""

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import sync_env  # noqa: E402


def test_environment_yml_is_generated_from_pyproject():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "sync_env.py")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_environment_yml_lists_every_requirement_once():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = [p for p in pip if not p.startswith("--")]
    assert sorted(listed) == sorted(sync_env.requirements())
    assert len(set(listed)) == len(listed)


def test_constraints_pin_cpu_torch_and_matching_torchvision():
    lines = [
        line.split("#")[0].strip()
        for line in (REPO / "constraints.txt").read_text().splitlines()
    ]
    pins = dict(line.split("==") for line in lines if "==" in line)
    assert pins["torch"] == "2.13.0+cpu"
    assert pins["torchvision"] == "0.28.0"  # the only release requiring torch 2.13.0
    gpu = (REPO / "constraints-gpu.txt").read_text()
    assert "torch==2.13.0\n" in gpu
