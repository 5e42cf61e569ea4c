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

# Debian's Chromium, which Playwright drives in the browser tests (never a browser
# downloaded by `playwright install`). PKU_AIGI_CHROMIUM points elsewhere, e.g. at a
# path that does not exist to check what happens without one.
CHROMIUM = Path(os.environ.get("PKU_AIGI_CHROMIUM", "/usr/bin/chromium"))


def in_ci() -> bool:
    """Whether the tests run in CI (``CI=true``, as CI services and ``.ci/run`` set it)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _browser_missing(reason: str) -> None:
    if in_ci():  # CI installs Chromium and Playwright: their absence is a broken setup
        pytest.fail(f"{reason} (CI=true: the browser tests must run in CI)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Chromium for ``playwright.chromium.launch(executable_path=...)``.

    Without Playwright or Chromium the tests that need them are skipped, with the
    reason, except in CI (``CI=true``), where that is a failure that says what is
    missing: CI must run them.
    """
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        _browser_missing(f"Playwright is not installed ({error}): pip install -e '.[dev]'")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _browser_missing(
            f"{CHROMIUM} not found: apt-get install chromium (never `playwright install`)"
        )
    return str(CHROMIUM)


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
def aigic_v1() -> Path:
    """Genuine .aigic version 1 files and the tiny model folders that made them."""
    return Path(__file__).parent / "data" / "aigic-v1"


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
