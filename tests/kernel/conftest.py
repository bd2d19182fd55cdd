"""Where the real kernel tree is, for the tests/kernel tests.

$MM_REVIEW_BOT_KERNEL_TREE, default kernel-tree/ of this checkout (made by `bot setup`). Without a tree these
tests skip locally, but fail under CI (CI=true), where `make test` sets the tree up first: a skip there
would hide a missing install step.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

KERNEL_TREE = Path(os.environ.get("MM_REVIEW_BOT_KERNEL_TREE", Path(__file__).resolve().parents[2] / "kernel-tree"))


def no_tree(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must set the kernel tree up: `make test` runs `bot setup`)")
    pytest.skip(reason)
