"""Links-file parsing, name safety and shard / name selection (no network)."""

from __future__ import annotations

import pytest

from directsam.config import ConfigError
from directsam.fetch.links import (
    LinkEntry,
    parse_links,
    parse_ranges,
    read_links,
    redact_url,
    sa1b_shard_index,
    select_entries,
    select_sa1b,
    validate_name,
)

MD5 = "0" * 31 + "a"
SHA = "F" * 64


def test_meta_links_file_with_header():
    text = "file_name\tcdn_link\nsa_000000.tar\thttps://cdn.example/a/sa_000000.tar?tok=1\r\n\nsa_000001.tar\thttps://cdn.example/b?x=y\n"
    entries = parse_links(text)
    assert entries == [
        LinkEntry("sa_000000.tar", "https://cdn.example/a/sa_000000.tar?tok=1"),
        LinkEntry("sa_000001.tar", "https://cdn.example/b?x=y"),
    ]


def test_optional_size_and_checksum_columns_in_any_order():
    text = f"sha256\turl\tname\tsize\tmd5\n{SHA}\thttps://h/x.zip\tx.zip\t123\t{MD5}\n\thttps://h/y\ty.zip\t\t\n"
    x, y = parse_links(text)
    assert x == LinkEntry("x.zip", "https://h/x.zip", 123, MD5, SHA.lower())
    assert y == LinkEntry("y.zip", "https://h/y")


def test_headerless_and_url_only_lines_and_comments():
    text = "# a comment\nval.zip\thttps://h/v1?sig=1\nhttps://h/dir/train%202017.zip?sig=2\n"
    a, b = parse_links(text)
    assert a.name == "val.zip"
    assert b.name == "train 2017.zip" and b.url.endswith("?sig=2")


@pytest.mark.parametrize(
    "row, message",
    [
        ("../evil.tar\thttp://h/e", "unsafe file name"),
        ("/etc/passwd\thttp://h/e", "path separator"),
        ("a/b.tar\thttp://h/e", "path separator"),
        ("a\\b.tar\thttp://h/e", "path separator"),
        ("..\thttp://h/e", "relative directory"),
        ("C:evil\thttp://h/e", "drive"),
        ("x.tar.part\thttp://h/e", "bookkeeping"),
        ("_MANIFEST.json\thttp://h/e", "bookkeeping"),
        ("x.tar\tftp://h/e", "not an http"),
        ("x.tar\tfile:///etc/passwd", "not an http"),
        ("x.tar", "expected 2 tab-separated fields, got 1"),
    ],
)
def test_unsafe_or_malformed_rows_are_refused_with_line_number(row, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_links(f"file_name\tcdn_link\nok.tar\thttp://h/ok\n{row}\n", source="--links L")
    assert "--links L line 3" in str(err.value)


def test_url_only_line_cannot_smuggle_a_path():
    # The name comes from the URL's last segment; an encoded slash must still be refused.
    with pytest.raises(ConfigError, match="path separator"):
        parse_links("https://h/x/..%2F..%2Fetc%2Fpasswd\n")


def test_duplicates_bad_checksums_and_empty_files():
    with pytest.raises(ConfigError, match="expected 'name<TAB>url' or 'url', got 3 fields"):
        parse_links("a.tar\thttp://h/1\textra\n")
    with pytest.raises(ConfigError, match="duplicate file name 'a.tar' \\(first on line 2\\)"):
        parse_links("name\turl\na.tar\thttp://h/1\na.tar\thttp://h/2\n")
    with pytest.raises(ConfigError, match="md5 'abc' is not 32 hex digits"):
        parse_links("name\turl\tmd5\na.tar\thttp://h/1\tabc\n")
    with pytest.raises(ConfigError, match="size '12kB'"):
        parse_links("name\turl\tsize\na.tar\thttp://h/1\t12kB\n")
    with pytest.raises(ConfigError, match="no links"):
        parse_links("# nothing\n\n")


def test_validate_name_accepts_ordinary_names():
    for name in ("sa_000000.tar", "train2017.zip", ".hidden", "a b.tgz"):
        assert validate_name(name) == name
    for name in ("", " x", "x\x00", "x\n"):
        with pytest.raises(ConfigError):
            validate_name(name)


def test_parse_ranges():
    assert parse_ranges("0-3,7, 5-5") == [0, 1, 2, 3, 5, 7]
    assert parse_ranges("120") == [120]
    for bad in ("", "1-", "a", "3-1", "1,,2"):
        with pytest.raises(ConfigError, match="--shards"):
            parse_ranges(bad)


def _sa1b_entries(indices):
    return [LinkEntry(f"sa_{i:06d}.tar", f"https://h/sa_{i:06d}.tar") for i in indices]


def test_select_sa1b_uses_numbers_in_names_not_positions():
    entries = _sa1b_entries([5, 0, 3, 1]) + [LinkEntry("readme.txt", "https://h/r")]
    assert [e.name for e in select_sa1b(entries, "0-1,5")] == [
        "sa_000000.tar",
        "sa_000001.tar",
        "sa_000005.tar",
    ]
    assert len(select_sa1b(entries, None)) == 5
    with pytest.raises(ConfigError, match="shard\\(s\\) 2, 4 not in the links file"):
        select_sa1b(entries, "0-5")
    assert sa1b_shard_index("sa_000123.tar") == 123 and sa1b_shard_index("x.tar") is None


def test_select_entries_positions_names_and_globs():
    entries = [LinkEntry(n, f"https://h/{n}") for n in ("train2017.zip", "val2017.zip", "ann.zip")]
    assert [e.name for e in select_entries(entries, "0,2")] == ["train2017.zip", "ann.zip"]
    assert [e.name for e in select_entries(entries, "ann.zip,*2017.zip")] == [
        "train2017.zip",
        "val2017.zip",
        "ann.zip",
    ]
    with pytest.raises(ConfigError, match="matches no file"):
        select_entries(entries, "test*.zip")
    with pytest.raises(ConfigError, match="past the last link"):
        select_entries(entries, "3")


def test_read_links_and_redaction(tmp_path):
    path = tmp_path / "links.tsv"
    path.write_text(
        "file_name\tcdn_link\nsa_000000.tar\thttps://cdn.x/p/sa_000000.tar?_nc=1&oh=s#f\n"
    )
    (entry,) = read_links(str(path))
    assert redact_url(entry.url) == "https://cdn.x/p/sa_000000.tar"
    with pytest.raises(ConfigError, match="cannot read"):
        read_links(str(tmp_path / "missing.tsv"))
