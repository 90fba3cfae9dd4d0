"""Shared fixtures: real MNIST from data/, the golden models' initial
parameters, each instruction-set variant, and a headless Chromium.  Helpers that are not fixtures
live in helpers.py."""

import os
import shutil

import pytest

from helpers import ISA_PARAMS, MANIFEST, golden_params, sha256, variant
from lenet5.data import load_split


@pytest.fixture(scope="session")
def mnist_train():
    return load_split("train", download=False, progress=False)


@pytest.fixture(scope="session")
def mnist_test():
    return load_split("test", download=False, progress=False)


@pytest.fixture(scope="session")
def init_params():
    params = golden_params("init_seed1.dat")
    assert sha256(params) == MANIFEST["init_sha256"]
    return params


@pytest.fixture(params=ISA_PARAMS)
def isa(request):
    """Runs the test under each variant of the fast kernels, then restores the default."""
    with variant(request.param) as name:
        yield name


#: Debian's chromium (apt-get install chromium), or the one LENET5_CHROMIUM names.
CHROMIUM = os.environ.get("LENET5_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Playwright, for the page's tests; skipped,
    with the reason, where Playwright or a Chromium is missing (.ci/run
    installs both)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    if not CHROMIUM:
        pytest.skip("no Chromium found (Debian: apt-get install chromium; or set LENET5_CHROMIUM)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield b
        b.close()
