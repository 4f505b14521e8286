"""Batch labelling on Ray Data: the local engine's predictor, one model copy per Ray actor.

Needs the ``ray`` extra (``pip install 'buyingstage[ray]'``); Ray is imported lazily, so
the core never needs it. Every input field passes through, rows keep their input order,
and each row gains the local engine's fields (:mod:`buyingstage.batch`): label,
confidence, scores (six floats), lang, lang_supported, abstained, and ``error`` for a
row whose text is missing or not a string (that row gets no label). Being columnar, the
output holds every field on every row, null where it does not apply.

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

from buyingstage.batch import ADDED_FIELDS, ERROR_FIELD, EXTENSIONS, FORMATS, PART_BATCHES, json_type
from buyingstage.errors import BuyingStageError, missing_extra

if TYPE_CHECKING:
    import ray.data

    from buyingstage.predict import Prediction

logger = logging.getLogger(__name__)

# Reading and writing files is light next to the model: those tasks reserve no CPU, so a
# pool of actors that takes every CPU of the cluster cannot starve them.
IO_TASK = {"num_cpus": 0}
FILE_EXTENSIONS = {
    "jsonl": ["jsonl", "ndjson", "json", "jsonl.gz", "ndjson.gz", "json.gz"],
    "csv": ["csv", "csv.gz"],
    "parquet": ["parquet", "pq"],
}


def _import_ray() -> Any:
    """``ray`` (with ``ray.data``), or the error that names the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise missing_extra("ray", "ray") from e
    return ray


# -- the actor ------------------------------------------------------------------
def _text_problem(value: object, text_field: str) -> str | None:
    """What is wrong with ``value`` as a text (None when it is a string)."""
    if isinstance(value, str):
        return None
    if value is None:
        return f"'{text_field}' is null or missing, not a string"
    return f"'{text_field}' is {json_type(value)}, not a string"


def _result_columns(preds: list[Prediction | None], problems: list[str | None],
                    labels: tuple[str, ...]) -> dict[str, pa.Array]:
    """The added fields as Arrow columns, in the local engine's order; no prediction gives nulls."""
    def col(name: str, type_: pa.DataType) -> pa.Array:
        return pa.array([None if p is None else getattr(p, name) for p in preds], type=type_)

    return {
        "label": col("label", pa.string()),
        "confidence": col("confidence", pa.float64()),
        "scores": col("scores", pa.struct([(label, pa.float64()) for label in labels])),
        "lang": col("lang", pa.string()),
        "lang_supported": col("lang_supported", pa.bool_()),
        "abstained": col("abstained", pa.bool_()),
        ERROR_FIELD: pa.array(problems, type=pa.string()),
    }


def _append_columns(table: pa.Table, columns: dict[str, pa.Array]) -> pa.Table:
    """Drop input columns named like the added ones (as the local engine does), then append these."""
    table = table.drop_columns([name for name in table.column_names if name in columns])
    for name, column in columns.items():
        table = table.append_column(name, column)
    return table


def _missing_field(text_field: str, fields: list[str]) -> BuyingStageError:
    return BuyingStageError(f"no field '{text_field}' in the input (fields: {', '.join(fields)}); "
                            "name the text field with --text-field")


class _Labeller:
    """A Ray Data callable class: loads the model once per actor, labels Arrow batches."""

    def __init__(self, model: str, text_field: str, batch_size: int, threads: int):
        from buyingstage.predict import StageClassifier

        self.classifier = StageClassifier.load(model, threads=threads)
        self.text_field = text_field
        self.batch_size = batch_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.text_field not in batch.column_names:
            raise _missing_field(self.text_field, batch.column_names)
        texts = batch.column(self.text_field).to_pylist()
        problems = [_text_problem(t, self.text_field) for t in texts]
        good = [t for t, problem in zip(texts, problems) if problem is None]
        found = iter(self.classifier.predict(good, batch_size=self.batch_size))
        preds = [next(found) if problem is None else None for problem in problems]
        return _append_columns(batch, _result_columns(preds, problems, self.classifier.labels))


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
    """A fixed pool of ``workers`` actors, or one that grows from 1 to the cluster's CPUs less one.

    The re-blocking tasks need a CPU: a pool that holds every CPU would wait forever.
    """
    ray = _import_ray()
    cpus = int(ray.cluster_resources().get("CPU", 0)) if ray.is_initialized() else 0
    if workers is None:
        return ray.data.ActorPoolStrategy(min_size=1, max_size=max(cpus - 1, 1) if cpus else None)
    if workers < 1:
        raise BuyingStageError(f"workers must be at least 1, got {workers}")
    if cpus and workers >= cpus:
        logger.warning("%d workers take all %d CPUs of the Ray cluster and leave none to re-block the "
                       "input; unless the cluster grows, use at most %d", workers, cpus, cpus - 1)
    return ray.data.ActorPoolStrategy(size=workers)


def label_dataset(ds: ray.data.Dataset, model: str | os.PathLike | None = None, text_field: str = "text",
                  batch_size: int = 64, workers: int | None = None) -> ray.data.Dataset:
    """``ds`` with label, confidence, scores, lang, lang_supported, abstained and error on every row.

    Lazy, like any Ray Data transform. Runs :class:`~buyingstage.predict.StageClassifier`
    in a pool of Ray actors, each with one CPU and one model copy: ``workers`` of them,
    or by default a pool that grows to the cluster's CPUs less one (re-blocking needs
    one). Sets ``preserve_order`` on the dataset's context (shared with ``ds``), so rows
    come out in input order.

    The int8 model's scores depend slightly on which texts share a ``predict`` call, so
    rows are re-blocked (strictly, in order) into the local engine's parts of
    ``PART_BATCHES * batch_size`` rows and each part is one call: the same labels and
    scores as :func:`buyingstage.batch.label_file`, row for row.

    >>> ds = ray.data.from_items([{"id": 1, "text": "Can I pay with PayPal?"}])
    >>> label_dataset(ds).take(1)[0]["label"]
    'purchase_decision'
    """
    _import_ray()
    if batch_size < 1:
        raise BuyingStageError(f"batch size must be at least 1, got {batch_size}")
    ds.context.execution_options.preserve_order = True
    part = PART_BATCHES * batch_size
    return ds.repartition(target_num_rows_per_block=part, strict=True).map_batches(
        _Labeller,
        fn_constructor_kwargs={"model": _resolve_model(model), "text_field": text_field,
                               "batch_size": batch_size, "threads": 1},
        batch_size=part,
        batch_format="pyarrow",
        compute=_compute(workers),
        num_cpus=1,
        udf_modifying_row_count=False,
    )


# -- files ------------------------------------------------------------------------
def _location(path: str | os.PathLike) -> str:
    """A URI as given (``s3://…``, repaired if ``Path`` collapsed its ``//``), a local path made absolute."""
    text = re.sub(r"^file:/+", "/", str(path))
    if re.match(r"^[a-zA-Z][\w+.-]+:/", text):
        return re.sub(r"^([a-zA-Z][\w+.-]+):/+", r"\1://", text)
    return str(Path(text).resolve())


def _is_uri(location: str) -> bool:
    return "://" in location


def _format_of(location: str) -> str | None:
    """The format by extension: of a file, or of the files in a local folder; None when unknown."""
    path = Path(location)
    if _is_uri(location) or not path.is_dir():
        return EXTENSIONS.get(path.suffix.lower())
    found = {EXTENSIONS[p.suffix.lower()] for p in path.rglob("*")
             if p.is_file() and p.suffix.lower() in EXTENSIONS}
    if len(found) > 1:
        raise BuyingStageError(f"{location} holds files of several formats ({', '.join(sorted(found))}); "
                               "pass --format")
    return found.pop() if found else None


def _formats(source: str, target: str, fmt: str | None) -> tuple[str, str]:
    """Input format (``fmt``, else by extension) and output format (by extension, else the input's)."""
    if fmt is not None and fmt not in FORMATS:
        raise BuyingStageError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    source_fmt = fmt or _format_of(source)
    if source_fmt is None:
        raise BuyingStageError(f"{source}: cannot tell the format from the extension; "
                               f"pass --format ({', '.join(FORMATS)})")
    return source_fmt, EXTENSIONS.get(Path(target).suffix.lower(), source_fmt)


def _read(location: str, fmt: str, text_field: str) -> ray.data.Dataset:
    """A JSONL, CSV or Parquet file, or a folder of them, as a Ray dataset (CSV text read as text)."""
    ray = _import_ray()
    options = {"file_extensions": FILE_EXTENSIONS[fmt], **IO_TASK}
    if fmt == "jsonl":
        return ray.data.read_json(location, **options)
    if fmt == "csv":
        import pyarrow.csv as pacsv

        convert = pacsv.ConvertOptions(column_types={text_field: pa.string()})
        return ray.data.read_csv(location, convert_options=convert, **options)
    return ray.data.read_parquet(location, **options)


def _scores_as_json(batch: pa.Table) -> pa.Table:
    """CSV holds no nested values: ``scores`` becomes a JSON object, as in the local engine."""
    column = batch.column("scores")
    scores = [None if s is None else json.dumps(s, ensure_ascii=False) for s in column.to_pylist()]
    return batch.set_column(batch.schema.get_field_index("scores"), "scores", pa.array(scores, pa.string()))


def _write(ds: ray.data.Dataset, location: str, fmt: str) -> None:
    """Write ``ds`` as a folder of JSONL, CSV or Parquet files whose names sort in row order."""
    io = {"ray_remote_args": IO_TASK}
    if fmt == "jsonl":
        ds.write_json(location, force_ascii=False, double_precision=15, **io)
    elif fmt == "csv":
        ds.map_batches(_scores_as_json, batch_format="pyarrow", udf_modifying_row_count=False,
                       **IO_TASK).write_csv(location, **io)
    else:
        ds.write_parquet(location, **io)


def _check_target(location: str) -> None:
    """Refuse to mix a new run's files into an existing output."""
    path = Path(location)
    if not _is_uri(location) and path.exists() and (path.is_file() or any(path.iterdir())):
        raise BuyingStageError(f"{location} already exists; remove it or name another output")


def _check_fields(ds: ray.data.Dataset, text_field: str) -> bool:
    """False for an input without rows; fail early when the text field is missing; warn when
    input fields will be replaced."""
    schema = ds.schema()
    if schema is None:
        return False
    fields = list(schema.names)
    if text_field not in fields:
        raise _missing_field(text_field, fields)
    replaced = sorted(set(fields) & set(ADDED_FIELDS))
    if replaced:
        logger.warning("input field(s) %s are replaced by the labels of the same name", ", ".join(replaced))
    return True


def _count(location: str, fmt: str) -> tuple[int, int]:
    """Rows, and rows with an error, in a written output (reading back only its error column)."""
    ray = _import_ray()
    options = {"file_extensions": FILE_EXTENSIONS[fmt], **IO_TASK}
    if fmt == "parquet":
        ds = ray.data.read_parquet(location, **options)
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        convert = pacsv.ConvertOptions(include_columns=[ERROR_FIELD], column_types={ERROR_FIELD: pa.string()},
                                       strings_can_be_null=True)
        ds = ray.data.read_csv(location, convert_options=convert, **options)
    else:
        ds = ray.data.read_json(location, **options)
    rows = errors = 0
    for batch in ds.select_columns([ERROR_FIELD]).iter_batches(batch_size=None, batch_format="pyarrow"):
        column = batch.column(ERROR_FIELD)
        rows, errors = rows + len(column), errors + len(column) - column.null_count
    return rows, errors


# -- the command --------------------------------------------------------------------
@dataclass
class RayLabelStats:
    """What a :func:`label_with_ray` run did."""

    rows: int
    errors: int
    seconds: float
    workers: int | None
    output: str

    def summary(self) -> str:
        """One line for the terminal.

        >>> RayLabelStats(2000, 0, 10.0, 2, "/data/out").summary()
        'labelled 2000 rows (0 with errors) in 10.0 s (200 rows/s, 2 Ray workers) → /data/out'
        """
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        pool = f"{self.workers} Ray workers" if self.workers else "autoscaled Ray workers"
        return (f"labelled {self.rows} rows ({self.errors} with errors) in {self.seconds:.1f} s "
                f"({rate:.0f} rows/s, {pool}) → {self.output}")


def _connect(address: str | None, num_cpus: int | None, workers: int | None) -> bool:
    """Join ``address`` (or ``$RAY_ADDRESS``; ``auto`` finds a ``ray start`` cluster on this machine),
    else start a new local Ray; True when this call started Ray.

    A local Ray gets one logical CPU more than the workers use: reading, re-blocking and
    writing are light, but each of their tasks needs a CPU to be scheduled.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        if num_cpus is not None:
            logger.warning("num_cpus is ignored when joining the Ray cluster at %s", address)
        ray.init(address=address)
    else:
        cpus = max(num_cpus or os.cpu_count() or 1, workers or 1)
        ray.init(address="local", num_cpus=cpus + 1, include_dashboard=False)
    return True


def label_with_ray(input_path: str | os.PathLike, output: str | os.PathLike, text_field: str = "text",
                   fmt: str | None = None, model: str | os.PathLike | None = None, address: str | None = None,
                   num_cpus: int | None = None, workers: int | None = None,
                   batch_size: int = 64) -> RayLabelStats:
    """Label a JSONL, CSV or Parquet file (or a folder of them) into the folder ``output``.

    Uses the Ray this process already joined, else the cluster at ``address`` (default
    ``$RAY_ADDRESS``), else starts a local Ray for ``num_cpus`` workers (default: all
    CPUs) and stops it at the end. The output's file names sort in row order.

    >>> label_with_ray("chats.jsonl", "labelled/", workers=2).summary()  # doctest: +SKIP
    'labelled 2000 rows (0 with errors) in 10.0 s (200 rows/s, 2 Ray workers) → /home/me/labelled'
    """
    source, target = _location(input_path), _location(output)
    if not _is_uri(source) and not Path(source).exists():
        raise BuyingStageError(f"{source}: no such file or folder")
    source_fmt, target_fmt = _formats(source, target, fmt)
    _check_target(target)
    model_dir = _resolve_model(model)
    ray = _import_ray()
    started = _connect(address, num_cpus, workers)
    try:
        ds = _read(source, source_fmt, text_field)
        if not _check_fields(ds, text_field):
            logger.warning("%s holds no rows; nothing to write", source)
            return RayLabelStats(0, 0, 0.0, workers, target)
        start = time.perf_counter()
        _write(label_dataset(ds, model_dir, text_field, batch_size, workers), target, target_fmt)
        seconds = time.perf_counter() - start
        rows, errors = _count(target, target_fmt)
    finally:
        if started:
            ray.shutdown()
    return RayLabelStats(rows, errors, seconds, workers, target)
