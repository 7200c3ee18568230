"""save_checkpoint / read_meta: round trip, metadata and lineage, atomic replacement."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
import torch
import transformers

from directsam.model import META_FILE, load_model, read_meta, save_checkpoint

META = {"resolution": 64, "threshold": 0.3, "thickness": 3, "step": 10}


def _logits(model, x):
    with torch.inference_mode():
        return model.eval()(pixel_values=x).logits


def test_save_then_load_gives_identical_logits(tmp_path):
    model = load_model("scratch:tiny:4")
    path = save_checkpoint(model, tmp_path / "ckpt", META)
    assert path == tmp_path / "ckpt"
    assert {"config.json", "model.safetensors", META_FILE} <= {p.name for p in path.iterdir()}
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(_logits(load_model(str(path)), x), _logits(model, x))
    # Nothing but the checkpoint is left in the parent (no temp directories).
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_meta_and_lineage(tmp_path):
    save_checkpoint(load_model("scratch:tiny"), tmp_path / "ckpt", {**META, "lineage": {"x": 1}})
    meta = read_meta(tmp_path / "ckpt")
    assert {k: meta[k] for k in META} == META
    assert meta["lineage"]["torch"] == importlib.metadata.version("torch")
    assert meta["lineage"]["transformers"] == transformers.__version__
    assert meta["lineage"]["directsam_version"]
    assert meta["lineage"]["x"] == 1
    assert json.loads((tmp_path / "ckpt" / META_FILE).read_text()) == meta


def test_read_meta_absent_is_empty(tmp_path):
    assert read_meta(tmp_path) == {}


def test_overwrite_replaces_whole_directory(tmp_path):
    save_checkpoint(load_model("scratch:tiny:1"), tmp_path / "ckpt", {"step": 1})
    (tmp_path / "ckpt" / "stale.txt").write_text("old")
    model = load_model("scratch:tiny:2")
    save_checkpoint(model, tmp_path / "ckpt", {"step": 2})
    assert read_meta(tmp_path / "ckpt")["step"] == 2
    assert not (tmp_path / "ckpt" / "stale.txt").exists()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_logits(load_model(str(tmp_path / "ckpt")), x), _logits(model, x))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    model = load_model("scratch:tiny")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(model, "save_pretrained", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(model, tmp_path / "ckpt", META)
    assert list(tmp_path.iterdir()) == []


def test_compiled_wrapper_is_unwrapped(tmp_path):
    class Wrapper:  # stands in for torch.compile's OptimizedModule
        def __init__(self, inner):
            self._orig_mod = inner

    model = load_model("scratch:tiny:6")
    save_checkpoint(Wrapper(model), tmp_path / "ckpt", META)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_logits(load_model(str(tmp_path / "ckpt")), x), _logits(model, x))
