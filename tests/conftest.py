"""Shared fixtures: the shipped model, loaded once per session."""
from __future__ import annotations

from pathlib import Path

import pytest

from buyingstage.predict import StageClassifier, default_model_path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"


@pytest.fixture(scope="session")
def model_path() -> Path:
    return default_model_path()


@pytest.fixture(scope="session")
def classifier(model_path) -> StageClassifier:
    return StageClassifier.load(model_path)
