"""Shared fixtures: the real AI-generated images in ../shared/data (never copied into git)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PKU_AIGI_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
PKU_EXAMPLES = SHARED_DATA / "pku-examples"
DIFFUSIONDB = SHARED_DATA / "diffusiondb-sample"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not PKU_EXAMPLES.is_dir():
        pytest.fail(f"test data not found at {SHARED_DATA}: the tests read ../shared/data")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pku_examples(shared_data) -> Path:
    return PKU_EXAMPLES


@pytest.fixture(scope="session")
def diffusiondb(shared_data) -> Path:
    return DIFFUSIONDB


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def hub_replica(pku_examples, tmp_path_factory):
    """A miniature replica of the Hub repo Forerunner/PKU-AIGI-500K (tests/hub_replica.py).

    ``hub_replica.root`` can be passed as ``data_dir=`` to ``pku_aigi.load_dataset``.
    """
    from hub_replica import build_replica

    return build_replica(tmp_path_factory.mktemp("hub") / "PKU-AIGI-500K", pku_examples)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a test module: on the 2-core box, tiny convolutions and
    MS-SSIM run much faster without OpenMP oversubscription (use with pytestmark)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
