"""load_model / scratch configs / checkpoint_sha: sizes, seeding, head replacement, pickle opt-in."""

from __future__ import annotations

import hashlib
import logging
import os

import pytest
import torch

from directsam.model import (
    PickleWeightsError,
    checkpoint_sha,
    load_model,
    parse_scratch_spec,
    scratch_config,
    tensors_sha,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Published totals (SegFormer paper, Table 1, encoder + decoder) for MiT-b0..b5.
PAPER_PARAMS = {"b0": 3.8e6, "b1": 13.7e6, "b2": 27.5e6, "b3": 47.3e6, "b4": 64.1e6, "b5": 84.7e6}
HIDDEN = {"b0": [32, 64, 160, 256], **{f"b{i}": [64, 128, 320, 512] for i in range(1, 6)}}
DEPTHS = {
    "b0": [2, 2, 2, 2],
    "b1": [2, 2, 2, 2],
    "b2": [3, 4, 6, 3],
    "b3": [3, 4, 18, 3],
    "b4": [3, 8, 27, 3],
    "b5": [3, 6, 40, 3],
}


def _fake_cityscapes_dir(path, num_labels=19):
    """A save_pretrained directory shaped like nvidia/segformer-b0-finetuned-cityscapes."""
    from transformers import SegformerForSemanticSegmentation

    config = scratch_config("tiny", num_labels=num_labels)
    config.id2label = {i: f"class{i}" for i in range(num_labels)}
    config.label2id = {v: k for k, v in config.id2label.items()}
    torch.manual_seed(1)
    model = SegformerForSemanticSegmentation(config)
    model.save_pretrained(path)
    return model


def test_tiny_logits_shape_loss_and_backward():
    model = load_model("scratch:tiny")
    assert model.config.num_labels == 1
    x = torch.randn(2, 3, 64, 64)
    labels = torch.randint(0, 2, (2, 64, 64))
    out = model(pixel_values=x, labels=labels)
    assert out.logits.shape == (2, 1, 16, 16)
    assert out.loss.item() > 0
    out.loss.backward()
    assert model.decode_head.classifier.weight.grad is not None


def test_b0_forward_shape():
    model = load_model("scratch:b0").eval()
    with torch.inference_mode():
        logits = model(pixel_values=torch.randn(1, 3, 96, 96)).logits
    assert logits.shape == (1, 1, 24, 24)


@pytest.mark.parametrize("size", ["b0", "b1", "b2", "b3", "b4", "b5"])
def test_every_scratch_size_builds_with_mit_sizes(size):
    model = load_model(f"scratch:{size}")
    cfg = model.config
    assert list(cfg.hidden_sizes) == HIDDEN[size]
    assert list(cfg.depths) == DEPTHS[size]
    assert cfg.decoder_hidden_size == (256 if size in ("b0", "b1") else 768)
    assert list(cfg.num_attention_heads) == [1, 2, 5, 8]
    assert list(cfg.sr_ratios) == [8, 4, 2, 1]
    assert cfg.num_labels == 1
    assert model.decode_head.classifier.out_channels == 1
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - PAPER_PARAMS[size]) / PAPER_PARAMS[size] < 0.03, params


def test_scratch_seed_is_reproducible_and_isolated():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = load_model("scratch:tiny")
    after = torch.rand(3)
    assert torch.equal(after, expected_next), "building must not consume the global RNG"
    b = load_model("scratch:tiny:0")
    c = load_model("scratch:tiny:1")
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize(
    "spec, expected",
    [("scratch:b0", ("b0", 0)), ("scratch:b5:7", ("b5", 7)), ("scratch:tiny:3", ("tiny", 3))],
)
def test_parse_scratch_spec(spec, expected):
    assert parse_scratch_spec(spec) == expected


@pytest.mark.parametrize("spec", ["scratch:b6", "scratch:b0:x", "scratch:b0:1:2", "scratch:"])
def test_bad_scratch_spec(spec):
    with pytest.raises(ValueError, match="scratch"):
        load_model(spec)


def test_cityscapes_like_dir_gets_fresh_one_way_classifier(tmp_path, caplog):
    source = _fake_cityscapes_dir(tmp_path / "cityscapes")
    with caplog.at_level(logging.WARNING, logger="directsam.model.build"):
        model = load_model(str(tmp_path / "cityscapes"))
    assert model.config.num_labels == 1
    assert model.decode_head.classifier.weight.shape == (1, 32, 1, 1)
    assert "decode_head.classifier.weight" in caplog.text
    assert "decode_head.classifier.bias" in caplog.text
    # Everything except the classifier is the checkpoint's.
    src = source.state_dict()
    for name, tensor in model.state_dict().items():
        if not name.startswith("decode_head.classifier"):
            assert torch.equal(tensor, src[name]), name
    # The fresh head is seeded: loading twice gives the same classifier.
    again = load_model(str(tmp_path / "cityscapes"))
    assert torch.equal(again.decode_head.classifier.weight, model.decode_head.classifier.weight)


def _fake_hub_cache(root, repo_id, files_from):
    """Lay out ``files_from`` as a cached snapshot of ``repo_id`` in an HF hub cache."""
    commit = "0" * 40
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in files_from.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return cache


def test_hub_id_loads_from_cache_offline_and_replaces_head(tmp_path, hub_cache):
    repo_id = "nvidia/segformer-b0-finetuned-cityscapes-1024-1024"
    _fake_cityscapes_dir(tmp_path / "src")
    snapshot = _fake_hub_cache(hub_cache, repo_id, tmp_path / "src")
    model = load_model(repo_id)
    assert model.config.num_labels == 1
    assert model.decode_head.classifier.out_channels == 1
    expected = hashlib.sha256((snapshot / "model.safetensors").read_bytes()).hexdigest()[:16]
    assert checkpoint_sha(repo_id) == expected


def test_released_directsam_layout_loads_unchanged(tmp_path, hub_cache):
    """chendelong/DirectSAM-* are num_labels=1 SegFormer dirs: nothing is re-initialised."""
    repo_id = "chendelong/DirectSAM-1800px-0424"
    source = load_model("scratch:tiny:5")
    source.save_pretrained(tmp_path / "src")
    _fake_hub_cache(hub_cache, repo_id, tmp_path / "src")
    model = load_model(repo_id)
    for (name, a), b in zip(model.state_dict().items(), source.state_dict().values()):
        assert torch.equal(a, b), name


def test_pickle_only_dir_needs_opt_in(tmp_path):
    source = load_model("scratch:tiny:2")
    directory = tmp_path / "pickle_ckpt"
    source.save_pretrained(directory)
    (directory / "model.safetensors").unlink()
    torch.save(source.state_dict(), directory / "pytorch_model.bin")
    with pytest.raises(PickleWeightsError, match="allow_pickle=True"):
        load_model(str(directory))
    model = load_model(str(directory), allow_pickle=True)
    for a, b in zip(model.state_dict().values(), source.state_dict().values()):
        assert torch.equal(a, b)


def test_hub_repo_without_safetensors_is_refused(monkeypatch):
    from transformers import SegformerForSemanticSegmentation

    def fake_from_pretrained(source, **kwargs):
        assert kwargs["use_safetensors"] is True
        raise OSError(f"{source} does not appear to have a file named model.safetensors")

    monkeypatch.setattr(SegformerForSemanticSegmentation, "from_pretrained", fake_from_pretrained)
    with pytest.raises(PickleWeightsError, match="hub repo owner/pickle-only"):
        load_model("owner/pickle-only")


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_model(str(tmp_path / "nope" / "ckpt"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OSError, match="no model.safetensors"):
        load_model(str(empty))


def test_checkpoint_sha(tmp_path):
    assert checkpoint_sha("scratch:b0") == "scratch:b0:0"
    assert checkpoint_sha("scratch:tiny:3") == "scratch:tiny:3"
    load_model("scratch:tiny").save_pretrained(tmp_path / "ckpt")
    expected = hashlib.sha256((tmp_path / "ckpt" / "model.safetensors").read_bytes()).hexdigest()
    assert checkpoint_sha(str(tmp_path / "ckpt")) == expected[:16]
    assert checkpoint_sha("some/alias", tmp_path / "ckpt") == expected[:16]


def test_checkpoint_sha_falls_back_to_tensor_hash(hub_cache):
    """A hub id whose weight file is not in the cache is identified by its tensors."""
    model = load_model("scratch:tiny:8")
    sha = checkpoint_sha("owner/not-cached", model)
    assert sha.startswith("tensors:") and len(sha) == len("tensors:") + 16
    assert sha == tensors_sha(load_model("scratch:tiny:8"))
    assert sha != tensors_sha(load_model("scratch:tiny:9"))
    with pytest.raises(FileNotFoundError, match="owner/not-cached"):
        checkpoint_sha("owner/not-cached")
