"""Whole-tar streaming: the tar parser, one row per image, chunk bookkeeping, damage, retries.

No Ray and no network: tars are generated in the test, read from local files (the same
``ResumableStream`` path an S3 GET takes) or from openers that fail on purpose.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from directsam.data.sources import objects
from directsam.data.sources.objects import ObjectInfo, ReadRetriesExhausted, stat_object
from directsam.data.sources.store import StoreOptions
from directsam.data.sources.tarformat import TarDamage, iter_members
from directsam.data.sources.tarstream import BLOCK, BLOCK_INFO, TarUnit, read_unit

STORE = StoreOptions(tries=3, backoff_s=0.0)


def _tar(path: Path, members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=fmt) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _images(first: int, n: int) -> list[tuple[str, bytes]]:
    out = []
    for k in range(first, first + n):
        out += [(f"sa_{k}.jpg", b"J%d" % k * (50 + k)), (f"sa_{k}.json", b'{"k": %d}' % k)]
    return out


def _unit(*paths: Path, **kw) -> TarUnit:
    return TarUnit("u", tuple(stat_object(str(p), STORE) for p in paths), **kw)


def _rows(unit: TarUnit, chunk_rows: int = 1 << 30, **kw) -> list[dict]:
    return [r for batch in read_unit(unit, "ds", STORE, chunk_rows, **kw) for r in batch]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_members_equal_tarfile_for_every_format(tmp_path, fmt):
    deep = "d" * 90 + "/" + "e" * 60 + "/sa_9.jpg"  # > 100 chars: prefix / long name / PAX path
    members = [*_images(1, 2), (deep, os.urandom(3000)), ("ü/sa_3.jpg", os.urandom(700))]
    path = _tar(tmp_path / "t.tar", members, fmt)
    with open(path, "rb") as f:
        got = [(m.name, m.data_offset, m.size, m.data) for m in iter_members(f)]
    with tarfile.open(path) as tf:
        want = [(t.name, t.offset_data, t.size, tf.extractfile(t).read()) for t in tf]
    assert got == want


def test_one_row_per_image_in_tar_order(tmp_path):
    members = _images(1, 3) + [("sa_4.jpg", b"lonely")] + [("sa_5.json", b"{}")]
    rows = _rows(_unit(_tar(tmp_path / "a.tar", members)))
    assert [r["image_id"] for r in rows] == ["sa_1", "sa_2", "sa_3", "sa_4"]  # no row for sa_5
    assert rows[0]["image_bytes"] == members[0][1] and rows[0]["annotation"] == members[1][1]
    assert rows[0]["source_uri"] == f"{tmp_path}/a.tar::sa_1.jpg" and rows[0]["error"] is None
    assert rows[3]["error"].startswith("annotation_missing: ") and rows[3]["image_bytes"] is None


def test_chunks_carry_their_count_and_positions(tmp_path):
    path = _tar(tmp_path / "a.tar", _images(1, 7))
    rows = _rows(_unit(path), chunk_rows=3)
    assert [r[BLOCK] for r in rows] == ["u-00000"] * 3 + ["u-00001"] * 3 + ["u-00002"]
    infos = [json.loads(r[BLOCK_INFO]) for r in rows if r[BLOCK_INFO]]
    assert [i["rows"] for i in infos] == [3, 3, 1]
    assert [i["final"] for i in infos] == [False, False, True]
    assert infos[0]["start"] == [0, 0] and infos[1]["start"] == infos[0]["end"]
    assert infos[2]["start"] == infos[1]["end"] and infos[2]["end"] == [1, 0]  # past the tar
    # Restarting at a chunk's end gives exactly the later chunks (one ranged read).
    t, offset = infos[0]["end"]
    again = _rows(_unit(path, start_tar=t, start_offset=offset, start_chunk=1), chunk_rows=3)
    assert [(r["image_id"], r[BLOCK], r[BLOCK_INFO]) for r in again] == [
        (r["image_id"], r[BLOCK], r[BLOCK_INFO]) for r in rows[3:]
    ]


def test_head_unit_reads_tars_in_order_up_to_the_limit(tmp_path):
    a = _tar(tmp_path / "a.tar", _images(1, 2))
    b = _tar(tmp_path / "b.tar", _images(3, 4))
    rows = _rows(_unit(a, b, limit=4), chunk_rows=3)
    assert [r["image_id"] for r in rows] == ["sa_1", "sa_2", "sa_3", "sa_4"]
    last = json.loads(rows[-1][BLOCK_INFO])
    assert last == {"rows": 1, "start": [1, last["start"][1]], "end": last["end"], "final": True,
                    "retry": None}  # fmt: skip


def test_damage_gives_rows_for_what_was_read_plus_one_naming_it(tmp_path):
    raw = _tar(tmp_path / "ok.tar", _images(1, 3)).read_bytes()
    with tarfile.open(tmp_path / "ok.tar") as tf:
        json2, jpg3 = tf.getmember("sa_2.json"), tf.getmember("sa_3.jpg")
    cases = {
        "cut_in_member": (raw[: json2.offset_data + 5], {"sa_1": None, "sa_2": "read_failed"}),
        "cut_at_header": (raw[: jpg3.offset], {"sa_1": None, "sa_2": None, "cut_at_header@": 1}),
        "bad_checksum": (
            raw[: jpg3.offset] + b"x" * 512 + raw[jpg3.offset + 512 :],
            {"sa_1": None, "sa_2": None, "bad_checksum@": 1},
        ),
        "not_a_tar": (b"definitely not a tar" * 40, {"not_a_tar@": 1}),
    }
    for name, (data, expected) in cases.items():
        path = tmp_path / f"{name}.tar"
        path.write_bytes(data)
        rows = _rows(_unit(path))
        got = {}
        for r in rows:
            key = r["image_id"].split("@")[0] + "@" if "@" in r["image_id"] else r["image_id"]
            got[key] = 1 if key.endswith("@") else (r["error"] or "").split(":")[0] or None
        assert got == expected, name
        assert json.loads(rows[-1][BLOCK_INFO])["final"] is True
    cut = _rows(_unit(tmp_path / "cut_at_header.tar"))[-1]
    assert cut["image_id"] == f"cut_at_header@{jpg3.offset}"
    assert "ends without its end-of-archive marker" in cut["error"]
    member = _rows(_unit(tmp_path / "cut_in_member.tar"))[-1]
    assert "sa_2.json is cut short (5 of" in member["error"] and member["image_bytes"] is None


def test_repeated_key_gets_its_own_failed_row(tmp_path):
    path = _tar(tmp_path / "a.tar", _images(1, 2) + _images(1, 1))
    rows = _rows(_unit(path))
    assert [r["image_id"].split("@")[0] for r in rows] == ["sa_1", "sa_2", "sa_1"]
    assert rows[2]["image_id"] != "sa_1" and "appears twice" in rows[2]["error"]


class _Flaky:
    """Opener wrapper: the first ``cuts`` bodies break after ``after`` bytes; with
    ``forever`` every body opened at or past ``fail_from`` fails at once."""

    def __init__(self, opener, after: int, cuts: int, fail_from: int | None = None):
        self.opener, self.after, self.cuts, self.fail_from = opener, after, cuts, fail_from
        self.opened: list[int] = []

    def __call__(self, offset: int):
        self.opened.append(offset)
        if self.fail_from is not None and offset >= self.fail_from:
            raise ConnectionResetError("injected: connection reset by peer")
        body = self.opener(offset)
        if self.cuts <= 0:
            return body
        self.cuts -= 1
        budget = [self.after]

        class Cut:
            def read(self, n):
                if budget[0] <= 0:
                    raise ConnectionResetError("injected: cut mid-body")
                data = body.read(min(n, budget[0]))
                budget[0] -= len(data)
                return data

            def close(self):
                body.close()

        return Cut()


def _patch_opener(monkeypatch, **kw) -> list[_Flaky]:
    made: list[_Flaky] = []
    real = objects._opener

    def opener(info, store):
        flaky = _Flaky(real(info, store), **kw)
        made.append(flaky)
        return flaky

    monkeypatch.setattr(objects, "_opener", opener)
    return made


def test_dropped_connections_resume_at_the_byte_where_they_broke(tmp_path, monkeypatch):
    path = _tar(tmp_path / "a.tar", _images(1, 6))
    clean = _rows(_unit(path), chunk_rows=4)
    made = _patch_opener(monkeypatch, after=1500, cuts=2)
    rows = _rows(_unit(path), chunk_rows=4)
    assert rows == clean
    assert made[0].opened == [0, 1500, 3000]  # two reconnects, each from where the body stopped


def test_exhausted_retries_leave_a_row_to_retry_and_a_rerun_reads_only_the_rest(
    tmp_path, monkeypatch
):
    path = _tar(tmp_path / "a.tar", _images(1, 6))
    clean = _rows(_unit(path), chunk_rows=4)
    with tarfile.open(path) as tf:
        fail_from = tf.getmember("sa_3.json").offset_data  # breaks inside image 3's group
    made = _patch_opener(monkeypatch, after=fail_from, cuts=1, fail_from=fail_from)
    rows = _rows(_unit(path), chunk_rows=4)
    with tarfile.open(path) as tf:
        group3 = tf.getmember("sa_3.jpg").offset
    assert [r["image_id"] for r in rows] == ["sa_1", "sa_2", f"a@{group3}"]
    assert rows[2]["error"].startswith(f"read_failed: {path}: read failed from byte {group3}: ")
    assert "ConnectionResetError" in rows[2]["error"] and "3 tries" in rows[2]["error"]
    info = json.loads(rows[2][BLOCK_INFO])
    assert info["retry"] == [0, group3] and info["final"] is False and info["rows"] == 3
    assert made[0].opened == [0, fail_from, fail_from]
    # The re-run starts at the failed group, chunk 0 already holding the two good rows.
    monkeypatch.undo()
    rest = _rows(_unit(path, start_offset=group3, filled=2), chunk_rows=4)
    assert [r["image_id"] for r in rows[:2] + rest] == [r["image_id"] for r in clean]
    assert [r[BLOCK] for r in rest] == [r[BLOCK] for r in clean[2:]]
    ends = [json.loads(r[BLOCK_INFO]) for r in rest + clean[2:] if r[BLOCK_INFO]]
    for info in ends:
        info.pop("start")  # where this read of the chunk began
    assert ends[: len(ends) // 2] == ends[len(ends) // 2 :]  # same counts, ends, final flags


def test_stream_gives_up_with_the_offset_and_never_mixes_a_changed_object(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 100)
    info = stat_object(str(path), STORE)
    opened = []

    def failing(offset):
        opened.append(offset)
        raise TimeoutError("injected timeout")

    stream = objects.ResumableStream(failing, info.uri, info.size, 10, 3, 0.0)
    with pytest.raises(ReadRetriesExhausted, match="at byte 10, 3 tries"):
        stream.read(5)
    assert opened == [10, 10, 10]
    changed = ObjectInfo(info.uri, info.size, "0-100")  # another mtime than the file's
    with pytest.raises(objects.ObjectChanged):
        objects.open_object(changed, 0, STORE).read(1)


def test_truncated_header_is_damage_not_an_exception(tmp_path):
    raw = _tar(tmp_path / "a.tar", _images(1, 1)).read_bytes()
    with pytest.raises(
        TarDamage, match=r"cut inside a header \(176 of 512 bytes\) \(at byte 1024\)"
    ):
        list(iter_members(io.BytesIO(raw[:1200])))
    members = []
    with pytest.raises(TarDamage, match=r"ends without its end-of-archive marker .*at byte 700"):
        members.extend(iter_members(io.BytesIO(raw[:700])))  # cut in the padding after sa_1.jpg
    assert [m.name for m in members] == ["sa_1.jpg"]


def test_datasource_reads_one_task_per_tar_in_a_new_seeded_order_per_epoch(tmp_path):
    from types import SimpleNamespace

    from directsam.data.sources.datasource import TarDatasource

    units = [_unit(_tar(tmp_path / f"t{k}.tar", _images(k * 2 + 1, 2))) for k in range(8)]
    units = [TarUnit(f"t{k}", u.tars) for k, u in enumerate(units)]

    def order(seed, execution):
        tasks = TarDatasource(units, "ds", STORE, shuffle_seed=seed).get_read_tasks(
            1, data_context=SimpleNamespace(_execution_idx=execution)
        )
        return [t.metadata.input_files[0].rsplit("/", 1)[1] for t in tasks]

    names = [f"t{k}.tar" for k in range(8)]
    assert order(None, 0) == order(None, 3) == names  # no shuffle: the plan's order
    epoch0, epoch1 = order(7, 0), order(7, 1)
    assert sorted(epoch0) == sorted(epoch1) == names and epoch0 != epoch1
    assert order(7, 1) == epoch1  # seeded: the same epoch gives the same order
    # A read task's blocks are the unit's rows (source columns only without bookkeeping).
    task = TarDatasource(units[:1], "ds", STORE).get_read_tasks(1)[0]
    (block,) = list(task())
    assert block["image_id"].to_pylist() == ["sa_1", "sa_2"] and "block" not in block.schema.names
