"""Checkpoint spec -> a Hugging Face Hub-ready folder: weights, configs and a model card.

The folder holds ``config.json`` + ``model.safetensors`` (``from_pretrained``),
``preprocessor_config.json`` (``SegformerImageProcessor`` at the checkpoint's resolution),
``directsam.json`` (our settings and provenance) and ``README.md`` (model card with YAML front
matter: architecture, training data and config, an evaluation table read from MLflow when a
tracking URI and experiment are given, and licence notes for SA-1B-derived weights). Nothing is
uploaded: ``huggingface-cli upload OWNER/NAME DIR`` is the user's step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from directsam.atomic import write_atomic
from directsam.metrics import table
from directsam.model.spec import DEFAULT_RESOLUTION, DEFAULT_THRESHOLD

# Metric columns of the model card's evaluation table (names and decimals from the table).
CARD_COLUMNS = (
    (table.MEAN_NUM_TOKENS, "mean tokens"),
    (table.MEAN_RECALL, "mean contour recall"),
    (table.MEAN_PRECISION, "mean precision"),
    (table.MEAN_F1, "mean F1"),
    (table.NUM_IMAGES, "images"),
)

SA1B_NOTE = (
    "SA-1B (Meta AI, https://ai.meta.com/datasets/segment-anything/) is released under the "
    "SA-1B Dataset Research License: research use only, no redistribution of the images, "
    "and the masks were produced by SAM. Weights trained on SA-1B masks, or on pseudo-labels "
    "of a model trained on them, inherit those terms as far as the licence reaches them: check "
    "it before any commercial use, and do not upload SA-1B images with the model."
)


def _eval_rows(
    tracking_uri: str, experiment: str, checkpoint: str, sha: str
) -> list[dict[str, Any]]:
    """Evaluation trial runs of ``experiment`` for this checkpoint (by sha, else by spec)."""
    from mlflow.tracking import MlflowClient

    from directsam.evaluation.report import (
        KIND_TRIAL,
        PARAM_NAMES,
        TAG_CHECKPOINT,
        TAG_CHECKPOINT_SHA,
        TAG_KIND,
        sort_rows,
    )

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"--experiment {experiment!r} does not exist at {tracking_uri}")
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_KIND}` = '{KIND_TRIAL}'")
    mine = [r for r in runs if r.data.tags.get(TAG_CHECKPOINT_SHA) == sha]
    if not mine:
        mine = [r for r in runs if r.data.tags.get(TAG_CHECKPOINT) == checkpoint]
    rows = []
    for run in mine:
        row: dict[str, Any] = {k: run.data.params.get(k) for k in PARAM_NAMES}
        row.update({k: run.data.metrics.get(k) for k in table.NAMES})
        if row["threshold"] is not None:
            rows.append(row)
    return sort_rows(rows)


def eval_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: dataset, resolution, tolerance, threshold, tokens, recall, precision, F1."""
    if not rows:
        return "No evaluation runs were found for this checkpoint."

    heads = ["dataset", "resolution", "tolerance", "threshold", *(h for _, h in CARD_COLUMNS)]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in rows:
        cells = [str(r["dataset"]), str(r["resolution"]), str(r["tolerance"])]
        cells.append(f"{float(r['threshold']):g}")
        cells += [table.format_value(r.get(m.name), m.digits) for m, _ in CARD_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_card(
    checkpoint: str, config: Any, meta: dict[str, Any], sha: str, evaluation: str | None
) -> str:
    """The README.md text (YAML front matter + markdown) of an exported checkpoint."""
    resolution = int(meta.get("resolution") or DEFAULT_RESOLUTION)
    threshold = float(meta.get("threshold") or DEFAULT_THRESHOLD)
    params = meta.get("num_parameters")
    train_cfg = meta.get("config")
    front = [
        "---",
        "library_name: transformers",
        "pipeline_tag: image-segmentation",
        "license: other",
        "license_name: sa-1b-derived",
        "tags:",
        "- directsam",
        "- segformer",
        "- boundary-detection",
        "- class-agnostic-segmentation",
        "---",
    ]
    training = [
        f"- stage: {meta.get('stage', 'unknown')}",
        f"- initialised from: `{meta.get('init', 'unknown')}`",
        f"- training data: {meta.get('dataset', 'unknown')}",
        f"- boundary thickness: {meta.get('thickness', 'unknown')}",
        f"- steps: {meta.get('step', 'unknown')}",
        f"- run name: {meta.get('run_name', 'unknown')}",
    ]
    body = [
        "# DirectSAM boundary model",
        "",
        "A SegFormer (`SegformerForSemanticSegmentation`, `num_labels=1`) that predicts one "
        "boundary logit per pixel at 1/4 resolution. Upsample, sigmoid and threshold: the "
        "connected components of the non-boundary pixels are class-agnostic segments "
        "(subobject tokens), in one forward pass.",
        "",
        "## Architecture",
        "",
        f"- encoder: Mix Transformer, hidden sizes {list(config.hidden_sizes)}, depths "
        f"{list(config.depths)}, heads {list(config.num_attention_heads)}",
        f"- decode head: all-MLP, {config.decoder_hidden_size} channels, 1 output (boundary)",
        f"- parameters: {params:,}" if params else "- parameters: see config.json",
        f"- input: {resolution} x {resolution} RGB, ImageNet mean/std (`preprocessor_config.json`)",
        f"- default threshold: {threshold:g}",
        f"- weights sha256 prefix of the source checkpoint: `{sha}`",
        f"- exported from: `{checkpoint}`",
        "",
        "## Usage",
        "",
        "```python",
        "import directsam",
        f'tokens = directsam.tokenize(images, checkpoint="OWNER/NAME", threshold={threshold:g})',
        "```",
        "",
        "or with plain transformers:",
        "",
        "```python",
        "import torch",
        "from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor",
        'model = SegformerForSemanticSegmentation.from_pretrained("OWNER/NAME").eval()',
        'processor = SegformerImageProcessor.from_pretrained("OWNER/NAME")',
        'pixels = processor(images=image, return_tensors="pt").pixel_values',
        "logits = model(pixel_values=pixels).logits  # (1, 1, H/4, W/4)",
        "probs = torch.sigmoid(torch.nn.functional.interpolate(logits, image.size[::-1], "
        'mode="bilinear"))',
        "```",
        "",
        "## Training",
        "",
        *training,
        "",
    ]
    if train_cfg:
        body += [
            "<details><summary>full training config</summary>",
            "",
            "```json",
            json.dumps(train_cfg, indent=2, sort_keys=True, default=str),
            "```",
            "",
            "</details>",
            "",
        ]
    body += [
        "## Evaluation",
        "",
        "Effective contour recall (tolerance in pixels) against the mean number of tokens per "
        "image, per threshold (from MLflow).",
        "",
        evaluation or "Not evaluated at export time (pass `--tracking-uri` and `--experiment`).",
        "",
        "## Licence notes",
        "",
        SA1B_NOTE,
        "",
        "The architecture code is from Hugging Face transformers (Apache-2.0); DirectSAM is by "
        "Chen et al. (arXiv:2402.14327).",
        "",
    ]
    return "\n".join(front + [""] + body)


def preprocessor_config(resolution: int) -> dict[str, Any]:
    """``SegformerImageProcessor`` settings equal to :func:`directsam.inference.preprocess_images`."""
    from directsam.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD

    return {
        "image_processor_type": "SegformerImageProcessor",
        "do_resize": True,
        "size": {"height": resolution, "width": resolution},
        "resample": 2,  # PIL bilinear
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
        "do_reduce_labels": False,
    }


def export_hub(
    checkpoint: str,
    output: str | os.PathLike[str],
    tracking_uri: str | None = None,
    experiment: str | None = None,
    allow_pickle: bool = False,
) -> Path:
    """Write a Hub-ready folder for ``checkpoint`` (any spec) to ``output``; returns it.

    Args:
        checkpoint: hub id, directory, ``scratch:*`` or ``models:/NAME/VERSION``.
        output: destination folder (created; files of the same name are replaced).
        tracking_uri, experiment: where to read evaluation runs for the card (both or neither).
        allow_pickle: accept a ``pytorch_model.bin``-only source (the export is safetensors).
    """
    from directsam.model.build import load_model
    from directsam.model.spec import checkpoint_sha, read_checkpoint_meta
    from directsam.tracking import lineage

    if tracking_uri is not None and experiment is None:
        raise ValueError("--tracking-uri needs --experiment (the evaluation experiment)")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(checkpoint, allow_pickle=allow_pickle)
    sha = checkpoint_sha(checkpoint, model)
    meta = dict(read_checkpoint_meta(checkpoint))
    meta.setdefault("resolution", DEFAULT_RESOLUTION)
    meta.setdefault("threshold", DEFAULT_THRESHOLD)
    meta["num_parameters"] = int(sum(p.numel() for p in model.parameters()))
    model.config.id2label = {0: "boundary"}
    model.config.label2id = {"boundary": 0}
    model.save_pretrained(out, safe_serialization=True)
    evaluation = None
    if experiment is not None:
        from directsam.tracking import resolve_tracking_uri

        rows = _eval_rows(resolve_tracking_uri(tracking_uri), experiment, checkpoint, sha)
        evaluation = eval_table(rows)
    record = {
        **meta,
        "source_checkpoint": checkpoint,
        "source_checkpoint_sha": sha,
        "export_lineage": lineage(),
    }
    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    write_atomic(out / "directsam.json", text.encode())
    pre = json.dumps(preprocessor_config(int(meta["resolution"])), indent=2) + "\n"
    write_atomic(out / "preprocessor_config.json", pre.encode())
    card = model_card(checkpoint, model.config, meta, sha, evaluation)
    write_atomic(out / "README.md", card.encode())
    return out
