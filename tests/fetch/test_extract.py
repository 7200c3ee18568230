"""Safe, resumable archive extraction into root/<stem>/ (no network)."""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest

from directsam.fetch.destination import Destination, UnsafePathError
from directsam.fetch.extract import (
    UnsafeArchiveError,
    archive_stem,
    extract_archive,
    member_path,
)
from tests.fetch.conftest import make_tar, sa1b_shard


def _extract(data: bytes, name: str, root, **kwargs):
    return extract_archive(lambda: io.BytesIO(data), name, Destination(str(root)), **kwargs)


def _tree(root) -> dict[str, bytes]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def test_archive_stem_and_member_paths():
    assert archive_stem("sa_000000.tar") == "sa_000000"
    assert archive_stem("train2017.zip") == "train2017"
    assert archive_stem("x.tar.gz") == "x" and archive_stem("x.TGZ") == "x"
    assert archive_stem("notes.txt") is None and archive_stem(".tar") is None
    assert member_path("./sa_1.jpg", "sa_000000") == "sa_1.jpg"
    assert member_path("sa_000000/sub/./a.jpg", "sa_000000") == "sub/a.jpg"
    assert member_path("sa_000000/", "sa_000000") is None
    assert member_path("sa_000000", "sa_000000") == "sa_000000"  # a file of that name stays
    for bad in ("../x", "/etc/passwd", "a/../../x", "a\\..\\x", "C:/x", "a\x00b"):
        with pytest.raises(UnsafeArchiveError):
            member_path(bad, "s")


def test_sa1b_layout_and_marker(tmp_path):
    name, tar, members = sa1b_shard(0)
    result = _extract(tar, name, tmp_path, archive_size=len(tar), archive_sha256="ab" * 32)
    assert result.status == "extracted" and result.written == len(members)
    tree = _tree(tmp_path)
    marker = json.loads(tree.pop("sa_000000/_EXTRACTED.json"))
    assert tree == {f"sa_000000/{m}": d for m, d in members.items()}
    assert (tmp_path / "sa_000000" / "sa_1.jpg").read_bytes() == members["sa_1.jpg"]
    assert marker["archive"] == name and marker["sha256"] == "ab" * 32 and marker["files"] == 4
    # Same archive again: the marker short-circuits.
    again = _extract(tar, name, tmp_path, archive_size=len(tar), archive_sha256="ab" * 32)
    assert again.status == "already" and again.written == 0


def test_partial_extraction_resumes_and_new_archive_version_rewrites(tmp_path):
    name, tar, members = sa1b_shard(1)
    _extract(tar, name, tmp_path, archive_sha256="11" * 32)
    folder = tmp_path / "sa_000001"
    (folder / "_EXTRACTED.json").unlink()  # as if interrupted before the marker
    (folder / "sa_3.jpg").unlink()
    (folder / "sa_4.json").write_bytes(b"{")  # half-written by some other tool: wrong size
    result = _extract(tar, name, tmp_path, archive_sha256="11" * 32)
    assert (result.status, result.written, result.resumed) == ("extracted", 2, 2)
    assert {k: v for k, v in _tree(folder).items() if k != "_EXTRACTED.json"} == members
    # A different archive sha256 invalidates the marker and every existing file.
    result = _extract(tar, name, tmp_path, archive_sha256="22" * 32)
    assert (result.status, result.written, result.resumed) == ("extracted", 4, 0)


def test_archive_wrapping_its_own_folder_is_not_nested_twice(tmp_path):
    tar = make_tar(
        [("coco/", b""), ("coco/a/1.png", b"x"), ("coco/b.txt", b"yy")], {"coco/": ("dir", "")}
    )
    _extract(tar, "coco.tar", tmp_path)
    assert sorted(_tree(tmp_path)) == ["coco/_EXTRACTED.json", "coco/a/1.png", "coco/b.txt"]
    assert not (tmp_path / "coco" / "coco").exists()
    assert (tmp_path / "coco" / "a" / "1.png").read_bytes() == b"x"


def test_links_inside_the_folder_are_kept(tmp_path):
    tar = make_tar(
        [("d/a.txt", b"A"), ("d/link", b""), ("hard", b"")],
        {"d/link": ("sym", "a.txt"), "hard": ("hard", "d/a.txt")},
    )
    _extract(tar, "s.tar", tmp_path)
    assert os.readlink(tmp_path / "s" / "d" / "link") == "a.txt"
    assert (tmp_path / "s" / "hard").read_bytes() == b"A"


@pytest.mark.parametrize(
    "members, kinds, match",
    [
        ([("../evil", b"x")], {}, "contains '..'"),
        ([("/tmp/evil", b"x")], {}, "absolute"),
        ([("ok/../../evil", b"x")], {}, "contains '..'"),
        ([("up", b"")], {"up": ("sym", "../outside")}, "points outside"),
        ([("d/up", b"")], {"d/up": ("sym", "../../outside")}, "points outside"),
        ([("abs", b"")], {"abs": ("sym", "/etc/passwd")}, "absolute"),
        ([("h", b"")], {"h": ("hard", "../outside/secret")}, "contains '..'"),
        ([("h", b"")], {"h": ("hard", "never-written")}, "names no earlier file"),
    ],
)
def test_escaping_members_are_refused(tmp_path, members, kinds, match):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    tar = make_tar([("fine.txt", b"ok"), *members], kinds)
    with pytest.raises(UnsafeArchiveError, match=match):
        _extract(tar, "bad.tar", root)
    assert sorted(os.listdir(outside)) == ["secret"] and not (tmp_path / "evil").exists()
    assert not (root / "bad" / "_EXTRACTED.json").exists()


def test_symlink_chains_cannot_escape(tmp_path):
    # "x -> ." is inside; "x/.." would then resolve above the folder although it looks lexically
    # fine from the symlink's own directory. The write-time realpath check catches it.
    root = tmp_path / "root"
    tar = make_tar(
        [("x", b""), ("y", b""), ("y/evil", b"!")], {"x": ("sym", "."), "y": ("sym", "x/..")}
    )
    with pytest.raises((UnsafeArchiveError, UnsafePathError)):
        _extract(tar, "chain.tar", root)
    assert not (tmp_path / "root" / "evil").exists() and not (tmp_path / "evil").exists()


def test_planted_symlinked_directory_is_not_followed(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (root / "s").mkdir(parents=True)
    os.symlink(outside, root / "s" / "sub")  # planted before extraction
    with pytest.raises(UnsafePathError, match="outside"):
        _extract(make_tar([("sub/file", b"x")]), "s.tar", root)
    assert os.listdir(outside) == []


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return buf.getvalue()


def test_zip_layout_and_up_front_rejection(tmp_path):
    data = _zip({"val2017/000001.jpg": b"1", "val2017/sub/2.jpg": b"22"})
    result = _extract(data, "val2017.zip", tmp_path)
    assert result.written == 2
    assert (tmp_path / "val2017" / "sub" / "2.jpg").read_bytes() == b"22"
    evil = _zip({"a.jpg": b"1", "../../evil.jpg": b"!"})
    with pytest.raises(UnsafeArchiveError):
        _extract(evil, "evil.zip", tmp_path / "z")
    assert not (tmp_path / "z" / "evil" / "a.jpg").exists()  # nothing written before the check


def test_non_archive_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a supported archive"):
        _extract(b"x", "notes.txt", tmp_path)
