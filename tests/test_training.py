"""The training script runs end to end on a tiny slice and leaves a complete, reproducible model folder."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from buyingstage.data import data_hash
from buyingstage.labels import LABELS
from buyingstage.predict import StageClassifier
from buyingstage.training import TrainConfig, with_accent_free_copies

ROOT = Path(__file__).resolve().parents[1]


def test_training_script_end_to_end_on_a_tiny_slice(tmp_path):
    config = json.loads((ROOT / "training" / "configs" / "e5-small.json").read_text())
    config.update(output_dir=str(tmp_path / "model"), data_dir=str(ROOT / "data"), max_train_examples=24,
                  max_steps=3, batch_size=8, progress=False, strip_accents_languages=[])
    (tmp_path / "tiny.json").write_text(json.dumps(config))
    result = subprocess.run([sys.executable, "-m", "buyingstage.cli", "train", str(tmp_path / "tiny.json"),
                             "--seed", "7"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / "model"
    saved = json.loads((folder / "training_config.json").read_text())
    assert saved["config"]["seed"] == 7 and saved["data_sha256"] == data_hash(ROOT / "data")
    metrics = json.loads((folder / "training_metrics.json").read_text())
    assert metrics["train_examples"] == 24 and metrics["history"][0]["step"] == 3
    model_config = json.loads((folder / "config.json").read_text())
    assert [model_config["id2label"][str(i)] for i in range(6)] == list(LABELS)
    assert model_config["buyingstage"]["temperature"] > 0
    clf = StageClassifier.load(folder)
    assert clf.predict("Can I pay with PayPal?").label in LABELS


def test_config_rejects_bad_values_with_the_value_in_the_message(tmp_path):
    with pytest.raises(ValueError, match="learning_rate must be in \\(0, 1\\), got 5"):
        TrainConfig(learning_rate=5)
    with pytest.raises(ValueError, match="languages \\['de'\\]"):
        TrainConfig(languages=["en", "de"])
    (tmp_path / "c.json").write_text(json.dumps({"epoch": 3}))
    with pytest.raises(ValueError, match="unknown config keys \\['epoch'\\]"):
        TrainConfig.from_file(tmp_path / "c.json")


def test_accent_free_copies_are_added_only_where_they_differ():
    rows = [{"text": "Vai piegāde ir bez maksas?", "lang": "lv", "label": "purchase_decision"},
            {"text": "kur var nopirkt letu velosipedu", "lang": "lv", "label": "information_search"},
            {"text": "¿Cuál es mejor?", "lang": "es", "label": "evaluation_of_alternatives"}]
    out = with_accent_free_copies(rows, ["lv"])
    assert out[:3] == rows
    assert out[3:] == [{"text": "Vai piegade ir bez maksas?", "lang": "lv", "label": "purchase_decision"}]
