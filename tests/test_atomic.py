"""``directsam.atomic``: whole files or nothing, on a local disk, an in-memory filesystem (temp
file + move) and a real S3-protocol server (one upload of the final key, nothing else)."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest
from pyarrow._fs import _MockFileSystem

from directsam.atomic import (
    TEMP_MARK,
    atomic_dir,
    publish_dir,
    remove_temp_files,
    temp_name,
    write_atomic,
)
from tests.data.sources.s3server import S3Server


class Boom(RuntimeError):
    pass


def _half_then_fail(fh):
    fh.write(b"half of the new ")
    raise Boom("writer died")


def _names(filesystem, directory):
    infos = filesystem.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
    return sorted(i.base_name for i in infos)


def test_local_write_creates_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "a" / "b" / "f.json"
    assert write_atomic(path, b"first") == 5  # parents created
    assert write_atomic(path, lambda fh: fh.write(b"second version")) == 14
    assert path.read_bytes() == b"second version"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.json"]
    # A ``.gz`` name is written as given, not compressed by pyarrow.
    assert write_atomic(tmp_path / "x.json.gz", b"raw") == 3
    assert (tmp_path / "x.json.gz").read_bytes() == b"raw"


def test_local_writer_that_fails_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(Boom):
        write_atomic(path, _half_then_fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_filesystem_without_atomic_upload_goes_through_a_temp_file(tmp_path):
    mock = _MockFileSystem()  # type_name "mock": no atomic upload, so temp file + move
    moves = []

    class Wrapped:  # the mock, with its moves recorded
        type_name = mock.type_name

        def move(self, src, dest):
            moves.append((src, dest))
            mock.move(src, dest)

        def __getattr__(self, name):
            return getattr(mock, name)

    fs = Wrapped()
    assert write_atomic("bucket/out/p.parquet", b"12345", filesystem=fs) == 5
    ((src, dest),) = moves
    assert dest == "bucket/out/p.parquet"
    assert src.startswith("bucket/out/.p.parquet" + TEMP_MARK)
    assert _names(mock, "bucket/out") == ["p.parquet"]
    with pytest.raises(Boom):
        write_atomic("bucket/out/p.parquet", _half_then_fail, filesystem=fs)
    assert _names(mock, "bucket/out") == ["p.parquet"]
    with mock.open_input_stream("bucket/out/p.parquet") as f:
        assert f.read() == b"12345"


def test_remove_temp_files_sweeps_only_hidden_temp_names(tmp_path):
    (tmp_path / temp_name("part-000001.parquet")).write_bytes(b"partial")
    (tmp_path / ".part-000002.parquet.tmp-abc").write_bytes(b"partial")
    (tmp_path / "part-000000.parquet").write_bytes(b"whole")
    (tmp_path / "notes.tmp-1").write_bytes(b"not ours: not hidden")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".x.tmp-1").write_bytes(b"below: left alone")
    assert remove_temp_files(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.tmp-1",
        "part-000000.parquet",
        "sub",
    ]
    assert remove_temp_files(tmp_path / "missing") == 0


def test_atomic_dir_publishes_whole_or_keeps_the_old(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".ckpt" + TEMP_MARK)
        (tmp / "a").write_text("1")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with pytest.raises(Boom), atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise Boom("save failed")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]  # replaced whole
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp or old copy left


def test_publish_dir_replaces_a_leftover(tmp_path):
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "new").write_text("n")
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "leftover").write_text("x")
    publish_dir(tmp_path / "stage", tmp_path / "final")
    assert [p.name for p in (tmp_path / "final").iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


@pytest.fixture(scope="module")
def s3():
    server = S3Server()
    server.client().create_bucket(Bucket="out")
    filesystem = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        endpoint_override=f"127.0.0.1:{server.port}",
        scheme="http",
    )
    yield server, filesystem
    server.stop()


def test_object_store_gets_one_upload_of_the_final_key(s3):
    server, filesystem = s3
    server.reset()
    assert write_atomic("out/gen/_plan.json", b'{"a": 1}\n', filesystem=filesystem) == 9
    with filesystem.open_input_stream("out/gen/_plan.json") as f:
        assert f.read() == b'{"a": 1}\n'
    # No temp key, no server-side copy, no delete: the upload of the final key (and pyarrow's
    # folder marker of its parent, which the local path's mkdir stands for).
    writes = [r for r in server.requests() if r["method"] in ("PUT", "POST", "DELETE")]
    assert {r["path"] for r in writes} == {"/out/gen/", "/out/gen/_plan.json"}
    assert "DELETE" not in {r["method"] for r in writes}
    assert _names(filesystem, "out/gen") == ["_plan.json"]


def test_object_store_writer_that_fails_leaves_no_object(s3):
    _, filesystem = s3
    with pytest.raises(Boom):
        write_atomic("out/gen/part-1.parquet", _half_then_fail, filesystem=filesystem)
    info = filesystem.get_file_info("out/gen/part-1.parquet")
    assert info.type == pafs.FileType.NotFound
