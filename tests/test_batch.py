"""Labelling files: formats, bad rows, strictness, and crash-safe resume (even after kill -9)."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from buyingstage.batch import PREDICTION_FIELDS, LabelStats, label_file
from buyingstage.cli import main
from buyingstage.errors import BuyingStageError
from buyingstage.labels import LABELS
from buyingstage.predict import StageClassifier

TEXTS = [
    "Can I pay with PayPal?",
    "Mijn laptop wordt heel traag.",
    "   ",
    "iPhone 15 o Pixel 8, ¿cuál tiene mejor batería?",
    "Arrived broken!! I want a refund.",
    "Vai piegāde uz Rīgu ir bez maksas?",
]
FORMATS = ("jsonl", "csv", "parquet")


def make_rows(n: int = len(TEXTS), text_field: str = "text") -> list[dict]:
    return [{"id": i, text_field: TEXTS[i % len(TEXTS)], "source": f"s{i}"} for i in range(n)]


def write_rows(path: Path, rows: list[dict]) -> Path:
    fmt = path.suffix[1:]
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def read_rows(path: Path) -> list[dict]:
    fmt = path.suffix[1:]
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    return pq.read_table(path).to_pylist()


@pytest.fixture
def fast_cli(monkeypatch, classifier):
    """The CLI with the session's classifier, so no command loads the model again."""
    monkeypatch.setattr(StageClassifier, "load", classmethod(lambda cls, *a, **k: classifier))
    return CliRunner()


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# -- formats --------------------------------------------------------------------

@pytest.mark.parametrize("out_fmt", FORMATS)
@pytest.mark.parametrize("in_fmt", FORMATS)
def test_every_format_round_trips(tmp_path, classifier, in_fmt, out_fmt):
    rows = make_rows()
    src = write_rows(tmp_path / f"in.{in_fmt}", rows)
    stats = label_file(src, tmp_path / f"out.{out_fmt}", classifier=classifier, progress=False)
    out = read_rows(tmp_path / f"out.{out_fmt}")

    assert (stats.rows, stats.errors) == (len(rows), 0)
    assert len(out) == len(rows)
    for before, after in zip(rows, out):
        assert str(after["id"]) == str(before["id"])  # CSV makes everything text
        assert (after["text"], after["source"]) == (before["text"], before["source"])
        assert set(PREDICTION_FIELDS) <= set(after)
        assert after["label"] in LABELS
        scores = json.loads(after["scores"]) if out_fmt == "csv" else after["scores"]
        assert list(scores) == list(LABELS)
        assert not after.get("error")
    blank = out[2]  # whitespace is no error: the classifier says none, empty
    assert blank["label"] == "none" and float(blank["confidence"]) == 1.0


def test_parquet_keeps_types_and_scores_is_a_struct(tmp_path, classifier):
    src = write_rows(tmp_path / "in.parquet", make_rows())
    label_file(src, tmp_path / "out.parquet", classifier=classifier, progress=False)
    schema = pq.read_schema(tmp_path / "out.parquet")
    assert schema.names == ["id", "text", "source", *PREDICTION_FIELDS, "error"]
    assert schema.field("id").type == pa.int64()
    assert pa.types.is_struct(schema.field("scores").type)
    assert [f.name for f in schema.field("scores").type] == list(LABELS)


def test_same_input_gives_the_same_output(tmp_path, classifier):
    src = write_rows(tmp_path / "in.jsonl", make_rows(20))
    label_file(src, tmp_path / "a.jsonl", classifier=classifier, progress=False)
    label_file(src, tmp_path / "b.jsonl", classifier=classifier, progress=False)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_format_option_names_the_input_format(tmp_path, classifier):
    src = write_rows(tmp_path / "in.jsonl", make_rows())
    odd = src.rename(tmp_path / "in.txt")
    label_file(odd, tmp_path / "out.csv", fmt="jsonl", classifier=classifier, progress=False)
    assert len(read_rows(tmp_path / "out.csv")) == len(TEXTS)
    with pytest.raises(BuyingStageError, match="pass --format"):
        label_file(odd, tmp_path / "out2.csv", classifier=classifier, progress=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_text_field(tmp_path, classifier, fmt):
    src = write_rows(tmp_path / f"in.{fmt}", make_rows(text_field="body"))
    label_file(src, tmp_path / f"out.{fmt}", text_field="body", classifier=classifier, progress=False)
    out = read_rows(tmp_path / f"out.{fmt}")
    assert [r["body"] for r in out] == TEXTS
    assert all(r["label"] in LABELS and not r.get("error") for r in out)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_missing_text_column_is_named(tmp_path, classifier, fmt):
    src = write_rows(tmp_path / f"in.{fmt}", make_rows(text_field="body"))
    with pytest.raises(BuyingStageError, match="no column 'text' .*--text-field"):
        label_file(src, tmp_path / "out.jsonl", classifier=classifier, progress=False)
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.jsonl.parts").exists()


# -- bad rows ---------------------------------------------------------------------

BAD_JSONL = (
    b'{"id": 1, "text": "Can I pay with PayPal?"}\n'
    b'{"id": 2, "text": \n'
    b'\n'
    b'{"id": 4, "text": 42}\n'
    b'{"id": 5}\n'
    b'{"id": 6, "text": "caf\xe9 ok?"}\n'
    b'[1, 2]\n'
    b'{"id": 8, "text": "Which one is better?"}\n'
)


def test_bad_jsonl_rows_get_an_error_and_the_run_goes_on(tmp_path, classifier):
    src = tmp_path / "in.jsonl"
    src.write_bytes(BAD_JSONL)
    stats = label_file(src, tmp_path / "out.jsonl", classifier=classifier, progress=False)
    out = read_rows(tmp_path / "out.jsonl")

    assert (stats.rows, stats.errors) == (7, 5)  # the blank line is no row
    errors = [r.get("error") for r in out]
    assert errors[0] is None and errors[-1] is None
    assert errors[1].startswith("line 2: not valid JSON")
    assert errors[2] == "line 4: 'text' is a number, not a string"
    assert errors[3] == "line 5: no 'text' field"
    assert errors[4].startswith("line 6: not valid UTF-8")
    assert errors[5] == "line 7: not a JSON object"
    assert [r.get("id") for r in out] == [1, None, 4, 5, 6, None, 8]
    for r in out:
        assert ("label" in r) == ("error" not in r)


def test_bad_csv_rows_get_an_error(tmp_path, classifier):
    src = tmp_path / "in.csv"
    src.write_bytes(b'id,text\n1,Can I pay with PayPal?\n2,"two\nlines"\n3\n4,caf\xe9\n5,fine\n')
    stats = label_file(src, tmp_path / "out.csv", classifier=classifier, progress=False)
    out = read_rows(tmp_path / "out.csv")

    assert (stats.rows, stats.errors) == (5, 2)
    assert [r["id"] for r in out] == ["1", "2", "3", "4", "5"]
    assert out[1]["text"] == "two\nlines" and out[1]["label"] in LABELS
    assert out[2]["error"] == "line 5: 1 fields, the header has 2" and out[2]["label"] == ""
    assert out[3]["error"] == "line 6: not valid UTF-8"


def test_strict_stops_at_the_first_bad_row(tmp_path, classifier):
    src = tmp_path / "in.jsonl"
    src.write_bytes(BAD_JSONL)
    with pytest.raises(BuyingStageError, match=r"in\.jsonl: line 2: not valid JSON"):
        label_file(src, tmp_path / "out.jsonl", strict=True, classifier=classifier, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # nothing half-written


def test_cli_strict_exits_2_with_one_line(tmp_path, fast_cli):
    src = tmp_path / "in.jsonl"
    src.write_bytes(BAD_JSONL)
    result = fast_cli.invoke(main, ["label", str(src), "-o", str(tmp_path / "out.jsonl"), "--strict"])
    assert_one_line_error(result, "line 2: not valid JSON")


def test_cli_missing_input_exits_2_with_one_line(tmp_path, fast_cli):
    result = fast_cli.invoke(main, ["label", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "out.csv")])
    assert_one_line_error(result, "nope.csv: no such file")


@pytest.mark.parametrize("output", ["missing-folder/out.jsonl", "a-folder"])
def test_cli_unwritable_output_exits_2_with_one_line(tmp_path, fast_cli, output):
    src = write_rows(tmp_path / "in.jsonl", make_rows())
    (tmp_path / "a-folder").mkdir()
    result = fast_cli.invoke(main, ["label", str(src), "-o", str(tmp_path / output), "--no-progress"])
    assert_one_line_error(result, "cannot write")


def test_cli_labels_and_summarises(tmp_path, fast_cli):
    src = write_rows(tmp_path / "in.csv", make_rows())
    result = fast_cli.invoke(main, ["label", str(src), "-o", str(tmp_path / "out.parquet"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"labelled {len(TEXTS)} rows (0 with errors) in ")
    assert pq.read_metadata(tmp_path / "out.parquet").num_rows == len(TEXTS)


def test_summary_is_one_line():
    assert LabelStats(1000, 2, 3.14, Path("out.jsonl")).summary() == \
        "labelled 1000 rows (2 with errors) in 3.1 s → out.jsonl"


# -- crash safety and resume ---------------------------------------------------------

class Interrupting:
    """The real classifier, but Ctrl-C arrives during the ``stop_at``-th predict call."""

    def __init__(self, classifier, stop_at: int):
        self.inner, self.calls, self.stop_at = classifier, 0, stop_at
        self.folder, self.threshold = classifier.folder, classifier.threshold

    def predict(self, texts, **kwargs):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.inner.predict(texts, **kwargs)


def test_existing_parts_folder_needs_resume(tmp_path, classifier):
    src = write_rows(tmp_path / "in.jsonl", make_rows())
    (tmp_path / "out.jsonl.parts").mkdir()
    with pytest.raises(BuyingStageError, match="pass --resume to continue it, or delete"):
        label_file(src, tmp_path / "out.jsonl", classifier=classifier, progress=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_resume_after_ctrl_c_matches_an_uninterrupted_run(tmp_path, classifier, fmt):
    src = write_rows(tmp_path / f"in.{fmt}", make_rows(30))
    out, options = tmp_path / f"out.{fmt}", dict(batch_size=1, progress=False)  # parts of 8 rows
    with pytest.raises(KeyboardInterrupt):
        label_file(src, out, classifier=Interrupting(classifier, stop_at=3), **options)
    assert not out.exists()
    assert len(list((tmp_path / f"out.{fmt}.parts").glob("part-*"))) == 2

    stats = label_file(src, out, resume=True, classifier=classifier, **options)
    label_file(src, tmp_path / f"whole.{fmt}", classifier=classifier, **options)
    assert stats.rows == 30
    assert out.read_bytes() == (tmp_path / f"whole.{fmt}").read_bytes()
    assert not (tmp_path / f"out.{fmt}.parts").exists()


def test_resume_refuses_other_options_or_a_changed_input(tmp_path, classifier):
    src = write_rows(tmp_path / "in.jsonl", make_rows(20))
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        label_file(src, out, batch_size=1, classifier=Interrupting(classifier, 2), progress=False)
    with pytest.raises(BuyingStageError, match="other settings.*batch_size was 1, now 2"):
        label_file(src, out, batch_size=2, resume=True, classifier=classifier, progress=False)
    with src.open("a") as f:
        f.write('{"text": "one more"}\n')
    with pytest.raises(BuyingStageError, match="has changed since the interrupted run"):
        label_file(src, out, batch_size=1, resume=True, classifier=classifier, progress=False)


def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path, classifier, model_path):
    src = write_rows(tmp_path / "in.jsonl", make_rows(160))
    out, parts = tmp_path / "out.jsonl", tmp_path / "out.jsonl.parts"
    script = Path(sys.executable).with_name("buyingstage")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from buyingstage.cli import main; main()"]
    command += ["label", str(src), "-o", str(out), "--model", str(model_path),
                "--batch-size", "4", "--no-progress"]  # parts of 32 rows
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (parts / "part-000000.jsonl").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before a part was written"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not out.exists() and len(list(parts.glob("part-*.jsonl"))) < 5

    with pytest.raises(BuyingStageError, match="--resume"):
        label_file(src, out, batch_size=4, classifier=classifier, progress=False)
    stats = label_file(src, out, batch_size=4, resume=True, classifier=classifier, progress=False)
    label_file(src, tmp_path / "whole.jsonl", batch_size=4, classifier=classifier, progress=False)

    assert stats.rows == 160
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl", "whole.jsonl"]
