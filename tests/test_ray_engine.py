"""The Ray Data engine: the local engine's labels and scores, row for row, in input order.

One local Ray (``ray_cluster``) serves every test that needs one. The reference is the
classifier's own ``predict``, called as the local engine calls it: once per part of
``PART_BATCHES * batch_size`` rows (the int8 model's scores depend a little on which
texts share a call).
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from buyingstage.batch import ADDED_FIELDS, PART_BATCHES
from buyingstage.cli import main
from buyingstage.errors import BuyingStageError
from buyingstage.ray_engine import label_dataset, label_with_ray

TEXTS_DIR = Path(__file__).resolve().parents[1] / "data" / "texts"
BATCH = 16  # parts of PART_BATCHES * BATCH = 128 rows, so a few hundred rows make several
PER_FILE = 50
NULL_TEXT_ERROR = "'text' is null or missing, not a string"


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray: two single-threaded workers, plus a logical CPU for reading and writing."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def rows() -> list[dict]:
    """~250 corpus rows with an id, plus a long text (several windows), an empty one and a null one."""
    found = []
    for path in sorted(TEXTS_DIR.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            found += [json.loads(line) for line in islice(f, PER_FILE)]
    if len(found) < 100:
        pytest.skip(f"data/texts holds only {len(found)} rows")
    found += [{"text": " ".join(r["text"] for r in found[:40])}, {"text": ""}, {"text": None}]
    return [{"id": i, **row} for i, row in enumerate(found)]


@pytest.fixture(scope="session")
def reference(classifier, rows) -> list:
    """The local engine's predictions: one ``predict`` call per part; None for a row without text."""
    part, out = PART_BATCHES * BATCH, []
    for start in range(0, len(rows), part):
        chunk = rows[start:start + part]
        found = iter(classifier.predict([r["text"] for r in chunk if isinstance(r["text"], str)],
                                        batch_size=BATCH))
        out += [next(found) if isinstance(r["text"], str) else None for r in chunk]
    return out


def assert_matches(got: list[dict], rows: list[dict], reference: list) -> None:
    """Same order, every input field kept, and the local engine's labels and scores."""
    assert [g["id"] for g in got] == [r["id"] for r in rows]
    for g, row, ref in zip(got, rows, reference):
        assert {k: g[k] for k in row if k not in ADDED_FIELDS} == {k: v for k, v in row.items()
                                                                   if k not in ADDED_FIELDS}
        if ref is None:
            assert (g["label"], g["scores"], g["error"]) == (None, None, NULL_TEXT_ERROR)
            continue
        assert g["error"] is None
        assert (g["label"], g["lang"], g["lang_supported"], g["abstained"]) == \
            (ref.label, ref.lang, ref.lang_supported, ref.abstained)
        assert g["confidence"] == pytest.approx(ref.confidence, abs=1e-4)
        assert list(g["scores"]) == list(ref.scores)
        assert g["scores"] == pytest.approx(ref.scores, abs=1e-4)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_cli_jsonl_file_to_folder_matches_local_engine(ray_cluster, tmp_path, rows, reference, model_path):
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "labelled"
    result = CliRunner().invoke(main, ["label", str(src), "-o", str(out), "--engine", "ray", "--workers", "2",
                                       "--batch-size", str(BATCH), "--model", str(model_path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines()[-1].startswith(f"labelled {len(rows)} rows (1 with errors) in ")
    got = [json.loads(line) for f in sorted(out.glob("*.json")) for line in f.open(encoding="utf-8")]
    assert_matches(got, rows, reference)
    assert ray_cluster.is_initialized()  # a Ray the command did not start is left running


def test_parquet_folder_to_parquet_folder(ray_cluster, tmp_path, rows, reference, model_path):
    src = tmp_path / "in"
    src.mkdir()
    table = pa.Table.from_pylist(rows)
    pq.write_table(table.slice(0, 100), src / "part-0.parquet")  # parts run across the two files
    pq.write_table(table.slice(100), src / "part-1.parquet")
    stats = label_with_ray(src, tmp_path / "out.parquet", model=model_path, workers=1, batch_size=BATCH)
    assert (stats.rows, stats.errors) == (len(rows), 1)
    tables = [pq.read_table(f) for f in sorted((tmp_path / "out.parquet").glob("*.parquet"))]
    assert tables[0].schema.field("scores").type == pa.struct([(label, pa.float64()) for label in
                                                               reference[0].scores])
    assert_matches(pa.concat_tables(tables).to_pylist(), rows, reference)


def test_label_dataset_on_an_in_memory_dataset(ray_cluster, rows, reference, model_path):
    ds = ray_cluster.data.from_items(rows, override_num_blocks=7)
    got = label_dataset(ds, model_path, batch_size=BATCH, workers=2).take_all()
    assert_matches(got, rows, reference)


def test_csv_reads_the_text_as_text_and_writes_scores_as_json(ray_cluster, tmp_path, classifier, model_path):
    src = tmp_path / "in.csv"
    src.write_text('id,text\n0,12\n1,"Can I pay with PayPal?"\n', encoding="utf-8")
    stats = label_with_ray(src, tmp_path / "out", model=model_path, workers=1)
    assert (stats.rows, stats.errors) == (2, 0)
    with open(next((tmp_path / "out").glob("*.csv")), encoding="utf-8", newline="") as f:
        got = list(csv.DictReader(f))
    expected = classifier.predict(["12", "Can I pay with PayPal?"], batch_size=64)
    assert [g["label"] for g in got] == [e.label for e in expected]
    assert [list(json.loads(g["scores"])) for g in got] == [list(e.scores) for e in expected]
    assert [g["error"] for g in got] == ["", ""]


def test_a_missing_text_field_is_named(ray_cluster, tmp_path, model_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"body": "hello"}])
    with pytest.raises(BuyingStageError, match=re.escape(
            "no field 'text' in the input (fields: body); name the text field with --text-field")):
        label_with_ray(src, tmp_path / "out", model=model_path)


def test_an_existing_output_is_refused(tmp_path, model_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "hello"}])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.json").write_text("{}\n")
    with pytest.raises(BuyingStageError, match="already exists; remove it or name another output"):
        label_with_ray(src, tmp_path / "out", model=model_path)


def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(BuyingStageError, match=re.escape(
            "ray is not installed; it comes with the 'ray' extra: pip install 'buyingstage[ray]'")):
        label_dataset(object())


def test_the_core_never_imports_ray():
    code = "import sys, buyingstage, buyingstage.cli, buyingstage.ray_engine; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
