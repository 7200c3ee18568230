"""S3-protocol store settings: endpoint, region, scheme -> pyarrow filesystems and boto3 clients.

One :class:`StoreOptions` per job says how to reach ``s3://`` URIs on any S3-protocol store
(AWS, MinIO, Ceph, R2, ...). It is resolved once, on the driver, from (first wins) the config /
CLI flag, the URI's own query (``s3://bucket/prefix?endpoint_override=host:9000&scheme=http``,
pyarrow's spelling), and the standard environment (``AWS_ENDPOINT_URL_S3``,
``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``). The resolved object is small and
picklable: read tasks receive it as an argument (so Ray workers on other hosts use the same
endpoint without any environment), and :func:`worker_env` turns it into the environment
variables a job's runtime env gives every worker, for code that resolves URIs itself.

Credentials are never part of it: they come from each process's standard AWS chain
(environment, ``~/.aws``, instance profile).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

QUERY_KEYS = ("endpoint_override", "scheme", "region", "anonymous")


@dataclass(frozen=True)
class StoreOptions:
    """How to reach ``s3://`` objects (everything optional: AWS defaults otherwise).

    Attributes:
        endpoint: endpoint URL (``http://127.0.0.1:9000``) or ``host:port`` (then ``scheme``).
        scheme: ``http`` | ``https`` for an endpoint given without one.
        region: region name (MinIO accepts any; AWS needs the bucket's).
        anonymous: unsigned requests (public buckets).
        tries: attempts per streamed read before giving up on a unit (dropped connection,
            timeout, 5xx); each retry resumes at the byte where the stream broke.
        backoff_s: first retry delay; doubles per failed attempt, capped at 30 s.
        timeout_s: connect / read timeout of one request.
    """

    endpoint: str | None = None
    scheme: str | None = None
    region: str | None = None
    anonymous: bool = False
    tries: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 60.0

    def endpoint_url(self) -> str | None:
        """``scheme://host:port`` or None (AWS)."""
        if not self.endpoint:
            return None
        if "://" in self.endpoint:
            return self.endpoint.rstrip("/")
        return f"{self.scheme or 'https'}://{self.endpoint.rstrip('/')}"

    def merged(self, other: StoreOptions) -> StoreOptions:
        """``self`` with its unset endpoint/scheme/region/anonymous filled from ``other``."""
        return replace(
            self,
            endpoint=self.endpoint or other.endpoint,
            scheme=self.scheme or other.scheme,
            region=self.region or other.region,
            anonymous=self.anonymous or other.anonymous,
        )

    def pyarrow_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``pyarrow.fs.S3FileSystem`` for these settings."""
        kw: dict[str, Any] = {}
        url = self.endpoint_url()
        if url:
            scheme, host = url.split("://", 1)
            kw["endpoint_override"], kw["scheme"] = host, scheme
        if self.region:
            kw["region"] = self.region
        if self.anonymous:
            kw["anonymous"] = True
        kw["connect_timeout"] = kw["request_timeout"] = float(self.timeout_s)
        return kw


def options_from_env(env: dict[str, str] | None = None) -> StoreOptions:
    """Endpoint and region from the standard AWS variables (what boto3 and pyarrow read)."""
    env = os.environ if env is None else env
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    return StoreOptions(endpoint=endpoint, region=region)


def split_uri(uri: str) -> tuple[str, StoreOptions]:
    """``"s3://b/p?endpoint_override=h:9000&scheme=http"`` -> (``"s3://b/p"``, options).

    Also accepts pyarrow's ``s3://anonymous@bucket/...``. URIs without a query come back
    unchanged with empty options.

    Raises:
        ValueError: an unknown query key (the message lists the accepted ones).
    """
    if "://" not in uri:
        return uri, StoreOptions()
    scheme, rest = uri.split("://", 1)
    rest, _, query = rest.partition("?")
    anonymous = False
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        user, _, authority = authority.rpartition("@")
        anonymous = user == "anonymous"
    clean = f"{scheme}://{authority}{slash}{path}"
    values = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(values) - set(QUERY_KEYS))
    if unknown:
        raise ValueError(
            f"{uri!r}: unknown query key(s) {', '.join(unknown)}; accepted: {', '.join(QUERY_KEYS)}"
        )
    opts = StoreOptions(
        endpoint=values.get("endpoint_override") or None,
        scheme=values.get("scheme") or None,
        region=values.get("region") or None,
        anonymous=anonymous or values.get("anonymous", "").lower() in ("1", "true", "yes"),
    )
    return clean, opts


def resolve_options(
    explicit: StoreOptions | None = None, uris: tuple[str, ...] = ()
) -> tuple[StoreOptions, list[str]]:
    """The job's options and its URIs without their query strings.

    Precedence: ``explicit`` (config / flag) > the URIs' queries > the environment. Two URIs
    naming different endpoints in their queries are refused (one endpoint per job).

    Raises:
        ValueError: conflicting endpoints or an unknown query key.
    """
    clean: list[str] = []
    from_uris = StoreOptions()
    for uri in uris:
        c, opts = split_uri(uri)
        clean.append(c)
        a, b = from_uris.endpoint_url(), opts.endpoint_url()
        if a and b and a != b:
            raise ValueError(f"{uri!r}: endpoint {b} differs from {a} given by another URI")
        from_uris = from_uris.merged(opts)
    base = explicit or StoreOptions()
    return base.merged(from_uris).merged(options_from_env()), clean


def worker_env(opts: StoreOptions) -> dict[str, str]:
    """Environment variables that make boto3 and pyarrow in a worker use ``opts``."""
    env: dict[str, str] = {}
    url = opts.endpoint_url()
    if url:
        env["AWS_ENDPOINT_URL"] = url
    if opts.region:
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = opts.region
    return env


# ----------------------------------------------------------------------------- clients


@functools.lru_cache(maxsize=16)
def s3_filesystem(opts: StoreOptions) -> Any:
    """A pyarrow ``S3FileSystem`` for ``opts`` (cached per process and settings)."""
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(**opts.pyarrow_kwargs())


def have_boto3() -> bool:
    try:
        import boto3  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=16)
def s3_client(opts: StoreOptions) -> Any:
    """A boto3 S3 client for ``opts`` (cached per process and settings; clients are thread-safe).

    Its own retries cover the first response of each call (standard mode); retries of a
    stream that breaks mid-body are ours (``directsam.data.sources.objects``), because they
    resume at the byte where the body stopped.
    """
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": max(1, opts.tries)},
        connect_timeout=opts.timeout_s,
        read_timeout=opts.timeout_s,
        max_pool_connections=32,
        signature_version=UNSIGNED if opts.anonymous else None,
    )
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=opts.endpoint_url(), region_name=opts.region, config=config
    )
