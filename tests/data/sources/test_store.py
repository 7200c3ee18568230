"""S3-protocol settings: URI queries, precedence, and how they reach filesystems and workers."""

from __future__ import annotations

import json

import pytest

from directsam.data.sources import fs
from directsam.data.sources.store import (
    StoreOptions,
    resolve_options,
    split_uri,
    worker_env,
)


@pytest.fixture
def no_aws_env(monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    yield
    fs.set_store(None)


def test_uri_query_is_parsed_and_stripped(no_aws_env):
    uri = "s3://bkt/sa1b/tars?endpoint_override=127.0.0.1:9000&scheme=http&region=eu-1"
    clean, opts = split_uri(uri)
    assert clean == "s3://bkt/sa1b/tars"
    assert opts.endpoint_url() == "http://127.0.0.1:9000" and opts.region == "eu-1"
    assert split_uri("s3://anonymous@bkt/k") == ("s3://bkt/k", StoreOptions(anonymous=True))
    assert split_uri("/local/path") == ("/local/path", StoreOptions())
    with pytest.raises(ValueError, match="unknown query key.*endpoint_url.*accepted: endpoint_ov"):
        split_uri("s3://b/k?endpoint_url=x")


def test_precedence_flag_then_query_then_environment(no_aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env:1")
    monkeypatch.setenv("AWS_REGION", "env-region")
    q = "s3://b/in?endpoint_override=query:2&scheme=http"
    opts, clean = resolve_options(None, (q, "/local/out"))
    assert clean == ["s3://b/in", "/local/out"]
    assert opts.endpoint_url() == "http://query:2" and opts.region == "env-region"
    flag = StoreOptions(endpoint="https://flag:3", tries=2)
    assert resolve_options(flag, (q,))[0].endpoint_url() == "https://flag:3"
    assert resolve_options(flag, (q,))[0].tries == 2
    assert resolve_options(None, ("s3://b/in",))[0].endpoint_url() == "http://env:1"
    with pytest.raises(ValueError, match="differs from"):
        resolve_options(None, (q, "s3://b/out?endpoint_override=other:4&scheme=http"))
    assert worker_env(opts) == {
        "AWS_ENDPOINT_URL": "http://query:2",
        "AWS_REGION": "env-region",
        "AWS_DEFAULT_REGION": "env-region",
    }


def test_resolve_builds_the_s3_filesystem_for_the_uri_and_the_process(no_aws_env):
    def endpoint(uri):
        filesystem, path, prefix = fs.resolve(uri)
        kw = filesystem.__reduce__()[1][0]  # S3FileSystem's own settings
        return path, prefix, kw["scheme"], kw["endpoint_override"]

    query = "s3://bkt/a/b.tar?endpoint_override=127.0.0.1:9&scheme=http"
    assert endpoint(query) == ("bkt/a/b.tar", "s3://", "http", "127.0.0.1:9")
    fs.set_store(StoreOptions(endpoint="http://minio:9000"))
    assert endpoint("s3://bkt/x")[2:] == ("http", "minio:9000")
    assert endpoint(query)[3] == "127.0.0.1:9"  # the URI's own query wins


def test_init_ray_passes_the_endpoint_to_workers_unless_the_job_sets_it(monkeypatch):
    from directsam.raycluster import worker_env_vars

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert worker_env_vars({"AWS_REGION": "r"}) == {
        "AWS_ENDPOINT_URL": "http://minio:9000",
        "AWS_REGION": "r",
    }
    # Inside `ray job submit` whose runtime env already sets it: Ray would refuse a duplicate.
    job = {"runtime_env": {"env_vars": {"AWS_ENDPOINT_URL": "http://minio:9000"}}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))
    assert worker_env_vars({"AWS_REGION": "r"}) == {"AWS_REGION": "r"}
