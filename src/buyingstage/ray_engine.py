"""Batch labelling on Ray Data: the local engine's predictor, one model copy per Ray actor.

Needs the ``ray`` extra (``pip install 'buyingstage[ray]'``); Ray is imported lazily, so
the core never needs it. Rows keep every input field, in input order, and gain the same
fields as the local engine: label, confidence, scores (six floats), lang, lang_supported,
abstained. Rows whose text is missing (null, or not a string) keep their fields and get
nulls for these.

The model folder must be readable at the same path on every node of a cluster (a shared
filesystem, or the same image with the shipped model).
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from buyingstage.errors import BuyingStageError, missing_extra

if TYPE_CHECKING:
    import ray.data

    from buyingstage.predict import Prediction

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "parquet")
SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
RESULT_FIELDS = ("label", "confidence", "scores", "lang", "lang_supported", "abstained")


def _import_ray() -> Any:
    """``ray`` (with ``ray.data``), or the error that names the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise missing_extra("ray", "ray") from e
    return ray


# -- the actor ----------------------------------------------------------------
def _result_columns(preds: list[Prediction | None], labels: tuple[str, ...]) -> dict[str, pa.Array]:
    """The result fields as Arrow columns; ``None`` predictions give nulls."""
    def col(name: str, type_: pa.DataType) -> pa.Array:
        return pa.array([None if p is None else getattr(p, name) for p in preds], type=type_)

    scores_type = pa.struct([(label, pa.float64()) for label in labels])
    return {
        "label": col("label", pa.string()),
        "confidence": col("confidence", pa.float64()),
        "scores": col("scores", scores_type),
        "lang": col("lang", pa.string()),
        "lang_supported": col("lang_supported", pa.bool_()),
        "abstained": col("abstained", pa.bool_()),
    }


def _set_columns(table: pa.Table, columns: dict[str, pa.Array]) -> pa.Table:
    """Replace same-named columns in place (like ``dict.update``), append the others."""
    for name, column in columns.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, column) if i >= 0 else table.append_column(name, column)
    return table


class _Labeller:
    """A Ray Data callable class: loads the model once per actor, labels Arrow batches."""

    def __init__(self, model: str, text_field: str, batch_size: int, threads: int):
        from buyingstage.predict import StageClassifier

        self.classifier = StageClassifier.load(model, threads=threads)
        self.text_field = text_field
        self.batch_size = batch_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.text_field not in batch.column_names:
            raise BuyingStageError(
                f"no field {self.text_field!r} in the input (fields: {', '.join(batch.column_names)}); "
                "name the text field with --text-field"
            )
        texts = batch.column(self.text_field).to_pylist()
        good = [i for i, t in enumerate(texts) if isinstance(t, str)]
        preds: list[Prediction | None] = [None] * len(texts)
        found = self.classifier.predict([texts[i] for i in good], batch_size=self.batch_size)
        for i, pred in zip(good, found):
            preds[i] = pred
        return _set_columns(batch, _result_columns(preds, self.classifier.labels))


def _resolve_model(model: str | os.PathLike | None) -> str:
    """The model folder as an absolute path, checked here so a bad one fails before Ray starts work."""
    from buyingstage.predict import ONNX_FILE, default_model_path

    folder = Path(model) if model is not None else default_model_path()
    if not (folder / "config.json").is_file():
        raise BuyingStageError(f"{folder} is not a buyingstage model folder (no config.json)")
    if not (folder / ONNX_FILE).is_file():
        raise BuyingStageError(f"{folder} has no {ONNX_FILE}; export it with: buyingstage export {folder}")
    return str(folder.resolve())


def _compute(workers: int | None) -> Any:
    """A fixed pool of ``workers`` actors, or a pool that grows from 1 to the cluster's CPUs."""
    ray = _import_ray()
    if workers is not None:
        if workers < 1:
            raise BuyingStageError(f"workers must be at least 1, got {workers}")
        return ray.data.ActorPoolStrategy(size=workers)
    cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else None
    return ray.data.ActorPoolStrategy(min_size=1, max_size=max(cpus, 1) if cpus else None)


def label_dataset(ds: ray.data.Dataset, model: str | os.PathLike | None = None, text_field: str = "text",
                  batch_size: int = 64, workers: int | None = None) -> ray.data.Dataset:
    """Add label, confidence, scores, lang, lang_supported and abstained to every row of ``ds``.

    Lazy, like any Ray Data transform. Runs :class:`~buyingstage.predict.StageClassifier`
    in a pool of Ray actors (one CPU and one model copy each): ``workers`` of them, or by
    default a pool that grows to the cluster's CPUs. Sets ``preserve_order`` on the
    dataset's context, so rows come out in input order.

    >>> ds = ray.data.from_items([{"id": 1, "text": "Can I pay with PayPal?"}])
    >>> label_dataset(ds).take(1)[0]["label"]
    'purchase_decision'
    """
    _import_ray()
    if batch_size < 1:
        raise BuyingStageError(f"batch_size must be at least 1, got {batch_size}")
    ds.context.execution_options.preserve_order = True
    return ds.map_batches(
        _Labeller,
        fn_constructor_kwargs={"model": _resolve_model(model), "text_field": text_field,
                               "batch_size": batch_size, "threads": 1},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=_compute(workers),
        num_cpus=1,
        udf_modifying_row_count=False,
    )


# -- files ----------------------------------------------------------------------
def _location(path: str | os.PathLike) -> str:
    """A URI as given (``s3://…``, repaired if ``Path`` collapsed its ``//``), a local path made absolute."""
    text = str(path)
    if re.match(r"^[a-zA-Z][\w+.-]+:/", text):
        return re.sub(r"^([a-zA-Z][\w+.-]+):/+", r"\1://", text)
    return str(Path(text).resolve())


def _is_uri(location: str) -> bool:
    return "://" in location


def _format_of(location: str) -> str | None:
    """The format by extension: of a file, or of the files in a local folder; None when unknown."""
    path = Path(location)
    if _is_uri(location) or not path.is_dir():
        return SUFFIXES.get(path.suffix.lower())
    found = {SUFFIXES[p.suffix.lower()] for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES}
    if len(found) > 1:
        raise BuyingStageError(f"{location} holds files of several formats ({', '.join(sorted(found))}); "
                               "pass --format")
    return found.pop() if found else None


def _formats(source: str, target: str, fmt: str | None) -> tuple[str, str]:
    """Input and output formats: ``fmt`` for both, else by extension (output defaults to input's)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise BuyingStageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt, fmt
    source_fmt = _format_of(source)
    if source_fmt is None:
        raise BuyingStageError(f"cannot tell the format of {source}; pass --format ({', '.join(FORMATS)})")
    return source_fmt, SUFFIXES.get(Path(target).suffix.lower(), source_fmt)


def read_input(location: str, fmt: str, text_field: str = "text") -> ray.data.Dataset:
    """A JSONL, CSV or Parquet file, or a folder of them, as a Ray dataset (CSV text read as text)."""
    ray = _import_ray()
    if fmt == "jsonl":
        return ray.data.read_json(location, lines=True)
    if fmt == "csv":
        import pyarrow.csv as pacsv

        convert = pacsv.ConvertOptions(column_types={text_field: pa.string()})
        return ray.data.read_csv(location, convert_options=convert, file_extensions=["csv"])
    return ray.data.read_parquet(location)


def _scores_as_json(batch: pa.Table) -> pa.Table:
    """CSV has no nested values: ``scores`` becomes a JSON object per row."""
    scores = [None if s is None else json.dumps(s) for s in batch.column("scores").to_pylist()]
    return _set_columns(batch, {"scores": pa.array(scores, type=pa.string())})


def write_output(ds: ray.data.Dataset, location: str, fmt: str) -> None:
    """Write ``ds`` as a folder of JSONL, CSV or Parquet files whose names sort in row order."""
    if fmt == "jsonl":
        ds.write_json(location, force_ascii=False)
    elif fmt == "csv":
        ds.map_batches(_scores_as_json, batch_format="pyarrow", udf_modifying_row_count=False).write_csv(location)
    else:
        ds.write_parquet(location)


def _check_target(location: str) -> None:
    """Refuse to mix a new run's files into an existing output."""
    path = Path(location)
    if not _is_uri(location) and path.exists() and (path.is_file() or any(path.iterdir())):
        raise BuyingStageError(f"{location} already exists; remove it or choose another output")


# -- the command ------------------------------------------------------------------
@dataclass
class RayLabelStats:
    """What a ``label_with_ray`` run did."""

    rows: int
    skipped: int
    abstained: int
    seconds: float
    workers: str
    output: str

    def summary(self) -> str:
        """One line for the terminal."""
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        return (f"labelled {self.rows - self.skipped} of {self.rows} rows ({self.abstained} abstained, "
                f"{self.skipped} without text) in {self.seconds:.1f}s ({rate:.0f} rows/s, "
                f"{self.workers} Ray workers) -> {self.output}")


def _connect(address: str | None, num_cpus: int | None) -> bool:
    """Join ``address`` (or ``$RAY_ADDRESS``), else start a local Ray; True when this call started Ray."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        if num_cpus is not None:
            logger.warning("--num-cpus is ignored when joining the Ray cluster at %s", address)
        ray.init(address=address)
        return True
    ray.init(num_cpus=num_cpus, include_dashboard=False)
    return True


def _count(location: str, fmt: str, text_field: str) -> tuple[int, int, int]:
    """Rows, rows without a label, and abstentions in a written output."""
    from ray.data.aggregate import Count, Sum

    counts = read_input(location, fmt, text_field).aggregate(
        Count(alias_name="rows"), Count("label", ignore_nulls=True, alias_name="labelled"),
        Sum("abstained", alias_name="abstained"))
    rows = int(counts["rows"])
    return rows, rows - int(counts["labelled"]), int(counts["abstained"] or 0)


def label_with_ray(input_path: str | os.PathLike, output: str | os.PathLike, text_field: str = "text",
                   fmt: str | None = None, model: str | os.PathLike | None = None, address: str | None = None,
                   num_cpus: int | None = None, workers: int | None = None,
                   batch_size: int = 64) -> RayLabelStats:
    """Label a JSONL, CSV or Parquet file (or a folder of them) into the folder ``output``.

    Joins the Ray cluster at ``address`` (default ``$RAY_ADDRESS``), else starts a local
    Ray with ``num_cpus`` CPUs and stops it at the end.

    >>> label_with_ray("chats.jsonl", "labelled/", workers=2).summary()  # doctest: +SKIP
    'labelled 2000 of 2000 rows (...) -> /home/me/labelled'
    """
    source, target = _location(input_path), _location(output)
    source_fmt, target_fmt = _formats(source, target, fmt)
    if not _is_uri(source) and not Path(source).exists():
        raise FileNotFoundError(2, "No such file or directory", source)
    _check_target(target)
    model_dir = _resolve_model(model)
    ray = _import_ray()
    started = _connect(address, num_cpus)
    try:
        start = time.perf_counter()
        ds = read_input(source, source_fmt, text_field)
        write_output(label_dataset(ds, model_dir, text_field, batch_size, workers), target, target_fmt)
        seconds = time.perf_counter() - start
        rows, skipped, abstained = _count(target, target_fmt, text_field)
    finally:
        if started:
            ray.shutdown()
    pool = str(workers) if workers is not None else "1-N"
    return RayLabelStats(rows, skipped, abstained, seconds, pool, target)
