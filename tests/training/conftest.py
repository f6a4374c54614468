"""Shared fixtures of the training tests."""

from __future__ import annotations

import dataclasses

import pytest


def _shuffled_targets(data, rows):
    """A deliberately worse challenger: its training targets permuted (features unchanged)."""
    targets = data.targets.sample(frac=1.0, random_state=0)
    targets.index = data.targets.index
    return dataclasses.replace(data, targets=targets)


@pytest.fixture
def shuffled_targets():
    """``retrain``'s ``challenger_hook`` that trains the challenger on shuffled targets."""
    return _shuffled_targets
