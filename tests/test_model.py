"""The shipped model still reaches its bars on data/ test split: a broken model can't land."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from buyingstage.baselines import tfidf_logreg
from buyingstage.data import load_texts
from buyingstage.evaluation import by_language, score
from buyingstage.labels import LABEL2ID, LABELS, LANGUAGES

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def test_split():
    rows = load_texts(DATA, split="test")
    return rows, np.array([LABEL2ID[r["label"]] for r in rows]), [r["lang"] for r in rows]


@pytest.fixture(scope="module")
def model_probs(classifier, test_split):
    rows, _, _ = test_split
    return classifier.predict_proba([r["text"] for r in rows])


def test_shipped_model_reaches_the_bars_in_every_language(model_probs, test_split):
    _, y, langs = test_split
    per_lang = by_language(langs, y, model_probs)
    for lang in LANGUAGES:
        assert per_lang[lang]["macro_f1"] >= 0.85, (lang, per_lang[lang])
    assert per_lang["en"]["macro_f1"] - per_lang["lv"]["macro_f1"] <= 0.04
    assert score(y, model_probs)["ece"] <= 0.05


def test_shipped_model_beats_tfidf_by_ten_points_in_every_language(model_probs, test_split):
    rows, y, langs = test_split
    train = load_texts(DATA, split="train")
    baseline = tfidf_logreg([r["text"] for r in train], [r["label"] for r in train], [r["text"] for r in rows])
    ours, theirs = by_language(langs, y, model_probs), by_language(langs, y, baseline)
    for lang in LANGUAGES:
        assert ours[lang]["macro_f1"] - theirs[lang]["macro_f1"] >= 0.10, (lang, ours[lang], theirs[lang])


def test_shipped_model_folder_is_complete(model_path):
    config = json.loads((model_path / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(len(LABELS))] == list(LABELS)
    assert {"temperature", "abstain_threshold", "max_length"} <= set(config["buyingstage"])
    for name in ("model.safetensors", "model.onnx", "tokenizer.json", "README.md", "training_config.json",
                 "training_metrics.json"):
        assert (model_path / name).is_file(), name
    assert (model_path / "model.safetensors").stat().st_size <= 100e6
