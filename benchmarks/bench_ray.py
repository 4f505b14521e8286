"""Rows per second of the Ray engine with one and two workers, and of the local engine beside it.

Labels ~2,000 texts from data/texts/*.jsonl (JSONL in, JSONL out) and prints a Markdown
table. Ray is started once per worker count, outside the timing, with one logical CPU
more than the workers (as ``buyingstage label --engine ray`` does); each timing covers
what a user waits for once Ray is up: starting the actors, loading the model in each,
reading, labelling and writing.

    BUYINGSTAGE_MODEL=models/buyingstage-e5-small python benchmarks/bench_ray.py
    python benchmarks/bench_ray.py --model models/buyingstage-e5-small --rows 2000 --workers 1 2
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

import ray

from buyingstage.batch import label_file
from buyingstage.predict import default_model_path
from buyingstage.ray_engine import label_with_ray

ROOT = Path(__file__).resolve().parents[1]


def load_rows(n: int) -> list[dict]:
    """``n`` rows taken in turn from each data/texts/*.jsonl file (so every language is in), with an id."""
    files = [[json.loads(line) for line in path.open(encoding="utf-8")]
             for path in sorted((ROOT / "data" / "texts").glob("*.jsonl"))]
    mixed = [row for group in zip(*files) for row in group]
    return [{"id": i, "text": row["text"]} for i, row in enumerate(islice(cycle(mixed), n))]


def time_local(src: Path, out: Path, model: str, batch_size: int) -> float:
    start = time.perf_counter()
    label_file(src, out, model=model, batch_size=batch_size, progress=False)
    return time.perf_counter() - start


def time_ray(src: Path, out: Path, model: str, workers: int, batch_size: int) -> float:
    ray.init(address="local", num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)
    try:
        start = time.perf_counter()
        label_with_ray(src, out, model=model, workers=workers, batch_size=batch_size)
        return time.perf_counter() - start
    finally:
        ray.shutdown()


def table(results: list[tuple[str, str, int, float]]) -> str:
    lines = ["| engine | workers | rows | seconds | rows/s |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {engine} | {workers} | {rows} | {seconds:.1f} | {rows / seconds:.0f} |"
              for engine, workers, rows, seconds in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model folder (default: the shipped model).")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-local", action="store_true", help="Skip the local engine's row.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    model = str(args.model or default_model_path())
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        src = work / "texts.jsonl"
        src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in load_rows(args.rows)),
                       encoding="utf-8")
        results = []
        if not args.no_local:
            results.append(("local", "-", args.rows, time_local(src, work / "local.jsonl", model, args.batch_size)))
        for workers in args.workers:
            seconds = time_ray(src, work / f"ray-{workers}", model, workers, args.batch_size)
            results.append(("ray", str(workers), args.rows, seconds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"model: {model}; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
          f"ray {ray.__version__}; batch size {args.batch_size}; 1-minute load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after\n")
    print(table(results))


if __name__ == "__main__":
    main()
