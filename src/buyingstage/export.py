"""Export a trained model folder to ONNX with int8 dynamic quantisation.

The default inference path (:mod:`buyingstage.predict`) runs this file with
onnxruntime; the PyTorch weights stay in the folder for training and for checks.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from buyingstage.errors import missing_extra

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
OPSET = 17


def export_onnx(folder: str | os.PathLike, quantize: bool = True) -> Path:
    """Write ``model.onnx`` (int8 weights by default) into a saved model folder."""
    try:
        import torch
        from transformers import AutoModelForSequenceClassification
    except ImportError as e:
        raise missing_extra(e.name or "torch", "train") from None
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    model.config.return_dict = False
    ids = torch.tensor([[0, 100, 200, 300, 2], [0, 100, 200, 2, 1]])
    mask = (ids != model.config.pad_token_id).long()
    target = folder / ONNX_FILE
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        torch.onnx.export(
            model, (ids, mask), str(fp32), input_names=["input_ids", "attention_mask"],
            output_names=["logits"], opset_version=OPSET, dynamo=False,
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                          "attention_mask": {0: "batch", 1: "sequence"}, "logits": {0: "batch"}},
        )
        staged = Path(tmp) / ONNX_FILE
        if quantize:
            quantize_dynamic(str(fp32), str(staged), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gather"], per_channel=False)
        else:
            fp32.replace(staged)
        os.replace(staged, target)
    logger.info("wrote %s (%.1f MB)", target, target.stat().st_size / 1e6)
    return target
