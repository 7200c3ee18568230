"""Checks every job runs on its flags before Ray starts: one line naming the flag and the value.

Each check takes plain values (the flag name included) and raises
:class:`directsam.config.ConfigError`, which the command line prints as
``directsam <command>: error: <message>`` with exit code 2. Nothing here imports Ray or torch;
MLflow is contacted only for ``--tracking-uri`` when tracking is on, and for ``models:/`` specs.
Remote locations (``s3://`` ...) are left to the job: checking them costs network round trips.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from directsam.config import ConfigError

if TYPE_CHECKING:
    from directsam.data.sources.spec import SourceSpec

# Source types whose --input may be a single file (others take a folder).
_FILE_INPUTS = {"sa1b": ".tar"}


def _is_remote(value: str) -> bool:
    return "://" in value and not value.startswith("file://")


def _local(value: str) -> Path:
    return Path(value.removeprefix("file://")).expanduser()


def _visible_entries(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if not name.startswith(".")]


def check_input(value: str, source: str, flag: str = "--input") -> None:
    """An input location of source type ``source``: it exists and is of the right kind.

    ``sa1b`` takes a folder or one ``.tar`` shard; every other source a folder. A folder must
    not be empty.
    """
    if not value:
        raise ConfigError(f"{flag}: required (a folder, file or URI of the {source} source)")
    if _is_remote(value):
        return
    path = _local(value)
    if not path.exists():
        raise ConfigError(f"{flag} {value}: no such file or folder")
    if path.is_file():
        if source == "sa1b":
            if not (path.name.lower().endswith(".tar") and tarfile.is_tarfile(path)):
                raise ConfigError(
                    f"{flag} {value}: not a .tar archive; sa1b takes a .tar shard, a folder of "
                    ".tar shards, or folders of extracted sa_*.jpg + sa_*.json"
                )
            return
        if source == "coco" and path.suffix.lower() == ".json":
            raise ConfigError(
                f"{flag} {value}: a JSON file; pass it as --annotations and the image folder "
                f"as {flag}"
            )
        raise ConfigError(f"{flag} {value}: a file; the {source} source takes a folder")
    if not path.is_dir():
        raise ConfigError(f"{flag} {value}: neither a file nor a folder")
    if not _visible_entries(path):
        raise ConfigError(f"{flag} {value}: the folder is empty")


def check_exists(value: str | None, flag: str, kind: str = "any") -> None:
    """An optional input path (``--annotations``, ``--labels``): when given, it exists and is a
    ``kind`` (``file``, ``dir`` or ``any``)."""
    if not value or _is_remote(value):
        return
    path = _local(value)
    if not path.exists():
        raise ConfigError(f"{flag} {value}: no such file or folder")
    if kind == "dir" and not path.is_dir():
        raise ConfigError(f"{flag} {value}: not a folder")
    if kind == "file" and not path.is_file():
        raise ConfigError(f"{flag} {value}: not a file")


def check_source(
    spec: SourceSpec,
    *,
    input_flag: str = "--input",
    annotations_flag: str = "--annotations",
    labels_flag: str = "--labels",
) -> None:
    """A job's source flags: the input (:func:`check_input`), and the annotation file or folder
    and the label-map folder when given."""
    check_input(spec.input, str(spec.type), input_flag)
    check_exists(spec.annotations, annotations_flag)
    check_exists(spec.labels, labels_flag, "dir")


def _creatable(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a writable folder, else None."""
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return None
    return parent


def check_output_dir(value: str | None, flag: str = "--output") -> None:
    """An output folder: not a file, and writable or creatable."""
    if not value:
        raise ConfigError(f"{flag}: required (an output folder or URI)")
    if _is_remote(value):
        return
    path = _local(value)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {value}: a file, not a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {value}: the folder is not writable")
        return
    blocker = _creatable(path)
    if blocker is not None:
        what = "a file" if blocker.is_file() else "not writable"
        raise ConfigError(f"{flag} {value}: cannot create it ({blocker} is {what})")


def check_output_file(value: str, flag: str = "--output") -> None:
    """An output file (a plot): not a folder, and its folder writable or creatable."""
    path = _local(value)
    if path.is_dir():
        raise ConfigError(f"{flag} {value}: a folder; give a file name (e.g. plot.png)")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag} {value}: the file is not writable")
    blocker = None if path.exists() else _creatable(path.parent)
    if blocker is not None:
        what = "a file" if blocker.is_file() else "not writable"
        raise ConfigError(f"{flag} {value}: cannot create it ({blocker} is {what})")


def check_checkpoint(spec: str, flag: str = "--checkpoint", allow_pickle: bool = False) -> str:
    """A checkpoint spec names something loadable (:func:`directsam.model.spec.check_spec`);
    returns its kind. ``models:/`` specs ask the MLflow registry."""
    from directsam.model.spec import SpecError, check_spec

    if not spec:
        raise ConfigError(f"{flag}: required (hub id, checkpoint folder, scratch:b0..b5)")
    try:
        return check_spec(spec, allow_pickle=allow_pickle)
    except SpecError as err:
        raise ConfigError(f"{flag} {spec}: {err}") from None


def check_tracking(
    uri: str | None, enabled: bool = True, *, reader: bool = False, timeout_s: float = 2.0
) -> str | None:
    """The tracking URI a job will use, checked: scheme, store path, server answering.

    Also bounds every later MLflow call of the process (short timeouts, no hidden retries;
    :func:`directsam.tracking.client.apply_http_env`).

    Args:
        uri: ``--tracking-uri`` as given (None: ``MLFLOW_TRACKING_URI``, else ./mlflow.db).
        enabled: tracking on; when off nothing is checked or created and None is returned.
        reader: the command only reads (``compare``): a sqlite store must already exist.
        timeout_s: how long to wait for the server's ``/health``.

    Returns:
        The resolved URI, or None when ``enabled`` is False.
    """
    if not enabled:
        return None
    from directsam.tracking.client import apply_http_env
    from directsam.tracking.mlflow import (
        TrackingError,
        check_reachable,
        check_store,
        resolve_tracking_uri,
    )

    try:
        resolved = resolve_tracking_uri(uri)
        label = _tracking_label(uri, resolved)
        check_store(resolved, must_exist=reader, label=label)
        check_reachable(resolved, timeout_s, label=label)
    except TrackingError as err:
        raise ConfigError(str(err)) from None
    apply_http_env()
    return resolved


def _tracking_label(flag: str | None, resolved: str) -> str:
    if flag:
        return f"--tracking-uri {flag}"
    source = "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "default"
    return f"--tracking-uri (not given; {source} {resolved})"


def check_spool(value: str, flag: str = "SPOOL") -> None:
    """A tracking spool to replay: a ``.jsonl`` file or a folder holding some."""
    from directsam.tracking.spool import spool_files

    if not Path(value).expanduser().exists():
        raise ConfigError(f"{flag} {value}: no such file or folder")
    if not spool_files(value):
        raise ConfigError(f"{flag} {value}: no spool files (*.jsonl) there")
