"""Security: no pickle code runs unless asked, no secrets in the repo, local endpoints stay local,
and nothing read from an archive, a links file or a manifest can write outside its root.

The malicious pickle used here is real: unpickling it calls ``pathlib.Path.touch`` on a marker
file, so "refused" means the marker never appears, not merely that an exception was raised.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import torch

from directsam.fetch.destination import Destination
from directsam.fetch.extract import UnsafeArchiveError, extract_archive
from directsam.fetch.links import parse_links
from directsam.model.build import PickleWeightsError, load_model

REPO = Path(__file__).resolve().parents[2]


class _Payload:
    """Pickles to ``Path(marker).touch()``: proof that code ran during unpickling."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _malicious_torch_file(path: Path, marker: Path) -> None:
    torch.save({"step": 1, "optimizer": _Payload(marker)}, path)


# ------------------------------------------------------------------------- weights and state


def test_safetensors_are_used_and_a_planted_pickle_is_never_opened(tmp_path):
    model = load_model("scratch:tiny:1")
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    assert (ckpt / "model.safetensors").is_file()
    marker = tmp_path / "pwned"
    _malicious_torch_file(ckpt / "pytorch_model.bin", marker)
    for allow in (False, True):  # safetensors win even when pickle is allowed
        loaded = load_model(str(ckpt), allow_pickle=allow)
        for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    assert not marker.exists()


def test_pickle_only_checkpoint_needs_the_explicit_opt_in(tmp_path):
    ckpt = tmp_path / "old"
    load_model("scratch:tiny:1").save_pretrained(ckpt)
    (ckpt / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    _malicious_torch_file(ckpt / "pytorch_model.bin", marker)
    with pytest.raises(PickleWeightsError, match="allow_pickle=True"):
        load_model(str(ckpt))
    assert not marker.exists()


def test_label_and_predict_jobs_default_to_no_pickle():
    from directsam.cli.predict import register
    from directsam.labeling.config import ModelConfig

    assert ModelConfig().allow_pickle is False
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    help_text = parser._subparsers._group_actions[0].choices["predict"].format_help()
    assert "--allow-pickle" in help_text


def test_training_state_with_a_pickle_payload_is_refused(tmp_path):
    from directsam.training.state import STATE_FILE, load_training_state

    marker = tmp_path / "pwned"
    _malicious_torch_file(tmp_path / STATE_FILE, marker)
    with pytest.raises(Exception, match="[Ww]eights only load failed|Unsupported global"):
        load_training_state(tmp_path)
    assert not marker.exists()
    # a plain state of tensors and containers loads
    torch.save(
        {"step": 3, "epoch": 0, "rng": {"torch_cpu": torch.get_rng_state()}}, tmp_path / STATE_FILE
    )
    assert load_training_state(tmp_path)["step"] == 3


# ------------------------------------------------------------------------- secrets

# Assembled at run time so this file does not match its own patterns.
_SECRET_PATTERNS = {
    "AWS access key id": "AK" + r"IA[0-9A-Z]{16}",
    "AWS secret key assignment": r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}",
    "GitHub token": "gh" + r"[pousr]_[A-Za-z0-9]{36}",
    "Hugging Face token": "h" + r"f_[A-Za-z0-9]{34}",
    "Slack token": "xo" + r"x[baprs]-[A-Za-z0-9-]{10,}",
    "private key": "-----BEGIN " + r"(RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----",
    "Google API key": "AI" + r"za[0-9A-Za-z_-]{35}",
}


# Documentation placeholders that test fixtures use on purpose (AWS's own example key, a
# sequential alphabet, runs of one character) are not credentials.
_PLACEHOLDER = re.compile(r"EXAMPLE|ABCDEFGHIJKLMNOP|(.)\1{15}")


def _repo_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return [REPO / p for p in out if p and (REPO / p).is_file()]


def test_no_credentials_in_tracked_files_or_configs():
    files = _repo_files()
    assert any(p.suffix == ".yaml" for p in files) and len(files) > 50
    hits = []
    for path in files:
        if path.stat().st_size > 5_000_000:
            continue
        text = path.read_bytes().decode("utf-8", "ignore")
        for what, pattern in _SECRET_PATTERNS.items():
            for m in re.finditer(pattern, text):
                if _PLACEHOLDER.search(m.group(0)):
                    continue
                hits.append(f"{path.relative_to(REPO)}: {what}: {m.group(0)[:12]}...")
    assert hits == []


def test_secret_patterns_catch_planted_examples():
    planted = "AK" + "IA" + "Q3ZK7RW2M5XTB8NV" + " gh" + "p_" + "aZ3" * 12
    for what in ("AWS access key id", "GitHub token"):
        m = re.search(_SECRET_PATTERNS[what], planted)
        assert m and not _PLACEHOLDER.search(m.group(0))


# ------------------------------------------------------------------------- local endpoints


def test_local_endpoints_default_to_loopback_or_no_socket(tmp_path, monkeypatch):
    from directsam.cli.submit import DEFAULT_ADDRESS
    from directsam.tracking import TrackingError, check_reachable, resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, tmp_path).startswith("sqlite:///")  # a file, no server
    assert DEFAULT_ADDRESS.startswith("http://127.0.0.1:")  # job submission via a tunnel
    with pytest.raises(TrackingError, match="--host 127.0.0.1"):
        check_reachable("http://127.0.0.1:9", timeout_s=2)


# ------------------------------------------------------------------------- escaping paths


def _tar(members: list[tuple[str, str, str | bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
                tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize(
    "members",
    [
        [("../evil.txt", "file", "x")],
        [("/tmp/evil.txt", "file", "x")],
        [("sa_1/../../evil.txt", "file", "x")],
        [("link", "symlink", "../../outside"), ("link/evil.txt", "file", "x")],
        [("hl", "hardlink", "../../etc/passwd")],
        [("dir\\..\\..\\evil.txt", "file", "x")],
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "symlink-then-write", "hardlink", "backslash"],
)
def test_tar_members_cannot_escape_the_extraction_root(tmp_path, members):
    data = _tar([("ok.jpg", "file", b"fine"), *members])
    root = tmp_path / "root"
    with pytest.raises((UnsafeArchiveError, ValueError)):
        extract_archive(lambda: io.BytesIO(data), "sa_000001.tar", Destination(str(root)))
    inside = {p.resolve() for p in root.rglob("*")} if root.exists() else set()
    outside = [p for p in tmp_path.rglob("*") if p.resolve() not in inside and p != root]
    assert outside == []  # nothing written next to (or above) the root
    assert not (root / "sa_000001" / "_EXTRACTED.json").exists()


@pytest.mark.parametrize("name", ["../x.tar", "/etc/x.tar", "a/b.tar", "..", "a\\b.tar"])
def test_links_file_names_cannot_escape(name):
    from directsam.config import ConfigError

    with pytest.raises(ConfigError, match="unsafe file name"):
        parse_links(f"file_name\tcdn_link\n{name}\thttps://example.com/x.tar\n")


@pytest.mark.parametrize("name", ["../../evil.tar", "/abs.tar", "sub/x.tar"])
def test_manifest_records_cannot_name_paths_outside_the_root(name):
    import json

    from directsam.fetch.manifest import FORMAT, VERSION, Manifest, ManifestError

    record = {
        "name": name,
        "size": 1,
        "sha256": "0" * 64,
        "url": "https://e/x",
        "fetched_at": "2026-01-01T00:00:00Z",
    }
    text = json.dumps({"format": FORMAT, "version": VERSION, "files": {name: record}})
    with pytest.raises(ManifestError, match="unsafe"):
        Manifest.from_json(text)


def test_coco_file_names_cannot_leave_the_image_root(tmp_path):
    import json

    from directsam.data.sources import SourceSpec, list_source

    (tmp_path / "secret.jpg").write_bytes(b"outside the dataset")
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    images = [
        {"id": 1, "file_name": "../../secret.jpg", "height": 4, "width": 4},
        {"id": 2, "file_name": "/etc/hostname", "height": 4, "width": 4},
        {"id": 3, "file_name": "ok.jpg", "height": 4, "width": 4},
    ]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": []}))
    items = {i.image_id: i for i in list_source(SourceSpec("coco", str(root)))}
    for bad in ("1", "2"):
        assert items[bad].error and items[bad].error.startswith("annotation_invalid: ")
        assert "outside" in items[bad].error
    assert items["3"].error is None
