from __future__ import annotations

import os
from pathlib import Path

import pytest

MBPP_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mbpp"


@pytest.fixture(scope="session")
def mbpp_dir() -> Path:
    """The MBPP splits the team keeps beside the repository (tests skip where absent)."""
    path = Path(os.environ.get("CODEGYM_MBPP_PATH", MBPP_DIR))
    if not (path / "validation.jsonl").exists():
        pytest.skip("MBPP data not found at %s" % path)
    return path


@pytest.fixture(scope="session")
def sandbox():
    from codegym.execution import Sandbox

    with Sandbox(timeout_s=5.0, workers=2) as sb:
        yield sb
