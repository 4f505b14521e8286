"""No silent drift: the int8 ONNX path agrees with the fp32 PyTorch model it was exported from.

The reference is ``AutoModelForSequenceClassification`` in fp32 over the same folder,
fed by the folder's own Hugging Face tokenizer, with the calibration temperature of
``config.json``. Only test texts that fit one window are compared, so both models see
exactly the same ids.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from buyingstage.data import load_texts
from buyingstage.predict import StageClassifier, softmax

SAMPLE = 400  # test texts compared; keeps this module well under a minute on 2 cores
MIN_AGREEMENT = 0.99
# int8 weights move the calibrated scores of the most sensitive 1% of texts by up to ~0.1
# (measured p99 0.10 against fp32); the bulk moves by under 0.01.
MAX_SCORE_DIFF = 0.12


def load_test_texts() -> list[str]:
    """Texts of the corpus test split."""
    rows = load_texts(split="test")
    return [r["text"].strip() for r in rows if r["text"].strip()]


@pytest.fixture(scope="module")
def paired(model_path):
    """For a seeded sample of one-window test texts: the ids and calibrated scores of both paths."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    clf = StageClassifier.load(model_path)
    body = clf.settings.max_length - 2  # a window is <s> + body + </s>
    texts = load_test_texts()
    lengths = [len(e.ids) for e in clf.tokenizer.encode_batch(texts, add_special_tokens=False)]
    fitting = [(n, t) for t, n in zip(texts, lengths) if n <= body]
    pick = np.random.default_rng(0).choice(len(fitting), size=min(SAMPLE, len(fitting)), replace=False)
    texts = [t for _, t in sorted(fitting[i] for i in pick)]  # by length: the reference pads less

    onnx_ids, _ = clf._windows(texts)
    onnx_probs = clf.predict_proba(texts)  # (n_texts, n_labels), calibrated

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_path, dtype=torch.float32).eval()
    assert [model.config.id2label[i] for i in range(len(clf.labels))] == list(clf.labels)
    ref_ids, logits = [], []
    with torch.inference_mode():
        for start in range(0, len(texts), 32):
            enc = tokenizer(texts[start:start + 32], truncation=True, max_length=clf.settings.max_length,
                            padding=True, return_tensors="pt")
            ref_ids += [row[mask.bool()].tolist() for row, mask in zip(enc["input_ids"], enc["attention_mask"])]
            logits.append(model(**enc).logits.numpy())  # (batch, n_labels)
    torch_probs = softmax(np.concatenate(logits) / clf.settings.temperature)
    return {"texts": texts, "onnx_ids": onnx_ids, "ref_ids": ref_ids, "labels": clf.labels,
            "onnx": onnx_probs, "torch": torch_probs}


def test_enough_one_window_texts_are_compared(paired):
    assert len(paired["texts"]) >= 100, f"only {len(paired['texts'])} test texts fit one window"


def test_both_paths_see_the_same_ids(paired):
    differ = [t for t, a, b in zip(paired["texts"], paired["onnx_ids"], paired["ref_ids"]) if a != b]
    assert not differ, f"{len(differ)} texts tokenised differently, e.g. {differ[:3]}"


def test_onnx_and_pytorch_give_the_same_label(paired):
    onnx_label, torch_label = paired["onnx"].argmax(1), paired["torch"].argmax(1)
    agreement = float(np.mean(onnx_label == torch_label))
    top2 = np.sort(paired["torch"], axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]  # how clear the reference's choice was
    differ = [(t, paired["labels"][a], paired["labels"][b], round(float(m), 4))
              for t, a, b, m in zip(paired["texts"], onnx_label, torch_label, margin) if a != b]
    assert agreement >= MIN_AGREEMENT, (
        f"same label on {agreement:.1%} of {len(paired['texts'])} texts (need {MIN_AGREEMENT:.0%}); "
        f"(text, onnx, pytorch, pytorch top-2 margin): {differ[:5]}"
    )


def test_onnx_and_pytorch_calibrated_scores_are_close(paired):
    diff = np.abs(paired["onnx"] - paired["torch"]).max(axis=1)  # (n_texts,)
    close = float(np.mean(diff <= MAX_SCORE_DIFF))
    worst = np.argsort(-diff)[:3]
    assert close >= MIN_AGREEMENT, (
        f"scores within {MAX_SCORE_DIFF} on {close:.1%} of {len(diff)} texts (need {MIN_AGREEMENT:.0%}); "
        f"largest differences: {[(paired['texts'][i], round(float(diff[i]), 3)) for i in worst]}"
    )


def test_predicting_imports_neither_torch_nor_transformers(model_path):
    code = (
        "import json, sys\n"
        "import buyingstage\n"
        "clf = buyingstage.StageClassifier.load(sys.argv[1])\n"
        "clf.predict('Can I pay with PayPal?')\n"
        "clf.predict(['Vai piegāde uz Rīgu ir bez maksas?', 'word ' * 400, ''])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(model_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []
