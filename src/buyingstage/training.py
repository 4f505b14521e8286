"""Fine-tuning the pruned e5 encoder on our corpus (needs the ``train`` extra).

One :class:`TrainConfig` (a JSON file) plus its seed describes a run completely.
:func:`train` fine-tunes on the train split, keeps the epoch with the best dev
macro-F1, fits the temperature and the abstain threshold on dev, and saves a Hugging
Face model folder with the ONNX export, the resolved config, the metrics and the
hash of the data beside the weights.
"""
from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from buyingstage.errors import BuyingStageError, missing_extra
from buyingstage.labels import LABEL2ID, LABELS, LANGUAGES

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything a training run depends on."""

    output_dir: str = "runs/model"  # where the model folder is written
    base: str = "pruned"  # "pruned", "multilingual-e5-small", a folder or a hub id
    data_dir: str = "data"  # corpus folder (data/texts/*.jsonl with splits)
    languages: list[str] = field(default_factory=lambda: list(LANGUAGES))  # train on these only
    seed: int = 13
    epochs: int = 6
    batch_size: int = 16
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128  # tokens per window, specials included
    stride: int = 32  # overlap of inference windows for longer texts
    freeze_word_embeddings: bool = True  # keeps unseen words where pretraining put them
    freeze_layers: int = 0  # also freeze the embeddings block and this many lowest encoder layers
    label_smoothing: float = 0.05
    strip_accents_languages: list[str] = field(default_factory=list)  # also train on accent-free copies
    max_train_examples: int | None = None  # a slice, for smoke tests
    max_steps: int | None = None  # stop early, for smoke tests
    target_selective_accuracy: float = 0.95  # abstain threshold: dev accuracy of kept predictions
    export_onnx: bool = True
    progress: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        unknown = set(self.languages) - set(LANGUAGES)
        if unknown:
            raise ValueError(f"languages {sorted(unknown)} are not among {LANGUAGES}")
        if not 0 <= self.freeze_layers <= 12:
            raise ValueError(f"freeze_layers must be in [0, 12], got {self.freeze_layers}")
        if not 0 <= self.stride < self.max_length - 2:
            raise ValueError(f"stride must be in [0, max_length - 2), got {self.stride}")

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "TrainConfig":
        """Read a JSON config; ``overrides`` (not None) replace its values."""
        values = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _require_torch():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise missing_extra(e.name or "torch", "train") from None


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(encodings: list[list[int]], labels: list[int], batch_size: int, pad_id: int,
            shuffle: bool, rng: random.Random | None = None):
    """Length-bucketed batches with dynamic padding: (input_ids, attention_mask, labels)."""
    import torch

    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]))
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(chunks)
    for chunk in chunks:
        width = max(len(encodings[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, :len(encodings[i])] = torch.tensor(encodings[i])
            mask[row, :len(encodings[i])] = 1
        yield ids, mask, torch.tensor([labels[i] for i in chunk]), chunk


def encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids with specials; training sees the first window of a long text."""
    out = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return [list(x) for x in out]


def predict_logits(model, encodings: list[list[int]], pad_id: int, batch_size: int = 64) -> np.ndarray:
    import torch

    model.eval()
    logits = np.zeros((len(encodings), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for ids, mask, _, chunk in batches(encodings, [0] * len(encodings), batch_size, pad_id, shuffle=False):
            logits[chunk] = model(input_ids=ids, attention_mask=mask).logits.float().numpy()
    return logits


def with_accent_free_copies(rows: list[dict], languages: list[str]) -> list[dict]:
    """``rows`` plus, for texts in ``languages`` that have diacritics, a copy typed without them.

    People often type Latvian without diacritics ("piegade" for "piegāde"); the copies
    teach the model that both spellings mean the same.
    """
    from buyingstage.vocab import strip_accents

    extra = [{**r, "text": strip_accents(r["text"])} for r in rows
             if r["lang"] in languages and strip_accents(r["text"]) != r["text"]]
    return rows + extra


def macro_f1(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", labels=list(range(len(LABELS))), zero_division=0))


def train(config: TrainConfig) -> Path:
    """Run one training; return the saved model folder."""
    _require_torch()
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer, BertForSequenceClassification, get_linear_schedule_with_warmup

    from buyingstage.base import resolve_base
    from buyingstage.calibration import choose_abstain_threshold, fit_temperature
    from buyingstage.data import data_hash, load_texts

    started = time.time()
    set_seed(config.seed)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    train_rows = load_texts(config.data_dir, split="train", langs=config.languages)
    dev_rows = load_texts(config.data_dir, split="dev")
    if config.max_train_examples:
        random.Random(config.seed).shuffle(train_rows)
        train_rows = train_rows[:config.max_train_examples]
        dev_rows = dev_rows[:max(config.max_train_examples // 2, 12)]
    if not train_rows or not dev_rows:
        raise BuyingStageError(f"{config.data_dir}: no train or dev texts found")

    base = resolve_base(config.base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = BertForSequenceClassification.from_pretrained(
        base, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id=LABEL2ID,
    )
    if config.freeze_word_embeddings:
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    if config.freeze_layers:
        for module in [model.bert.embeddings, *model.bert.encoder.layer[:config.freeze_layers]]:
            module.requires_grad_(False)
    pad_id = model.config.pad_token_id

    train_rows = with_accent_free_copies(train_rows, config.strip_accents_languages)
    train_x = encode(tokenizer, [r["text"] for r in train_rows], config.max_length)
    train_y = [LABEL2ID[r["label"]] for r in train_rows]
    dev_x = encode(tokenizer, [r["text"] for r in dev_rows], config.max_length)
    dev_y = np.array([LABEL2ID[r["label"]] for r in dev_rows])

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate)
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    rng = random.Random(config.seed)

    best = {"dev_macro_f1": -1.0}
    best_state = None
    history = []
    step = 0
    bar = tqdm(total=total_steps, desc="training", disable=not config.progress, file=sys.stderr)
    for epoch in range(1, config.epochs + 1):
        model.train()
        running = []
        for ids, mask, y, _ in batches(train_x, train_y, config.batch_size, pad_id, shuffle=True, rng=rng):
            loss = loss_fn(model(input_ids=ids, attention_mask=mask).logits, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            running.append(loss.item())
            step += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(running[-50:]):.3f}")
            if step >= total_steps:
                break
        dev_logits = predict_logits(model, dev_x, pad_id)
        score = macro_f1(dev_y, dev_logits.argmax(1))
        record = {"epoch": epoch, "step": step, "train_loss": float(np.mean(running)), "dev_macro_f1": score}
        history.append(record)
        logger.info("epoch %d: train loss %.4f, dev macro-F1 %.4f", epoch, record["train_loss"], score)
        bar.write(f"epoch {epoch}: train loss {record['train_loss']:.4f}  dev macro-F1 {score:.4f}")
        if score > best["dev_macro_f1"]:
            best = dict(record)
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if step >= total_steps:
            break
    bar.close()

    model.load_state_dict(best_state)
    dev_logits = predict_logits(model, dev_x, pad_id)
    temperature = fit_temperature(dev_logits, dev_y)
    threshold = choose_abstain_threshold(dev_logits / temperature, dev_y, config.target_selective_accuracy)

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.config.buyingstage = {
        "temperature": temperature, "abstain_threshold": threshold,
        "max_length": config.max_length, "stride": config.stride, "languages": list(LANGUAGES),
    }
    save_model(model, tokenizer, out)
    metrics = {"best": best, "history": history, "temperature": temperature,
               "abstain_threshold": threshold, "train_examples": len(train_x), "dev_examples": len(dev_x),
               "seconds": round(time.time() - started, 1)}
    (out / "training_config.json").write_text(json.dumps(
        {"config": asdict(config), "command": " ".join(sys.argv),
         "data_sha256": data_hash(config.data_dir), "base": str(base)}, indent=2))
    (out / "training_metrics.json").write_text(json.dumps(metrics, indent=2))
    if config.export_onnx:
        from buyingstage.export import export_onnx

        export_onnx(out)
    logger.info("saved %s (dev macro-F1 %.4f, T=%.3f, threshold=%.3f)", out, best["dev_macro_f1"],
                temperature, threshold)
    return out


def save_model(model, tokenizer, out: Path) -> None:
    """Weights as fp16 safetensors (half the size, same predictions), config and tokenizer."""
    import torch

    model.config.dtype = "float32"  # load back as fp32 unless asked otherwise
    model.save_pretrained(out, state_dict={k: v.to(torch.float16) if v.is_floating_point() else v
                                           for k, v in model.state_dict().items()})
    tokenizer.save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    config["dtype"] = "float32"
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
