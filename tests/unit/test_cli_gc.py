"""streams/cli.tune_gc: the worker's young-generation threshold, the older ratios kept."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.cli import tune_gc


@pytest.fixture
def restore_threshold() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_sets_the_first_threshold_and_keeps_the_others(restore_threshold: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc(50_000)
    assert gc.get_threshold() == (50_000, 10, 10)


def test_zero_leaves_cpythons_thresholds(restore_threshold: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc(0)
    assert gc.get_threshold() == (700, 10, 10)
