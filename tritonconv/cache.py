"""Persistent tuning cache: JSON files of winning configs, one per GPU model and Triton version.

Files are named ``<gpu>__triton-<version>.json`` and hold::

    {"format": 1, "device": "NVIDIA H100 80GB HBM3", "triton": "3.6.0",
     "entries": {"<exact key>": {"config": {...}, "ms": 0.123, "bucket": "<bucket key>", "timing": "cuda_graph"}}}

``timing`` says how the winner's ``ms`` was taken: ``"cuda_graph"`` (replays of a CUDA graph: the
kernels' own time) or ``"host"`` (calls timed one by one, where a kernel shorter than the host path is
timed at the host's pace, and so may have won by chance); entries written without it are host-timed.
``python -m tritonconv.tune`` tunes host-timed entries again.

Lookup order: the user cache (``$TRITONCONV_CACHE_DIR``, default ``~/.cache/tritonconv``),
then the cache shipped in the package (``autotune_cache/`` of the source tree),
exact key before bucket key (see :mod:`tritonconv.tuning`). The shipped cache serves only entries
timed from CUDA graph replays: a host-timed winner there may have won by chance and was tuned
against the kernels of its day (its file keeps it, so that tuning redoes it first); a user's own
entries serve whatever their timing. A file that cannot be read, or
that says another format, device or Triton version, gives one warning and is ignored.
Writes merge under a file lock and replace the file atomically (temp file + rename), so
concurrent processes never see a half-written file and never lose each other's entries.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import tempfile
import warnings
from pathlib import Path

import filelock
import triton

from .geometry import Config, Problem

FORMAT = 1


def user_dir() -> Path:
    """``$TRITONCONV_CACHE_DIR``, else ``$XDG_CACHE_HOME/tritonconv``, else ``~/.cache/tritonconv``."""
    if os.environ.get("TRITONCONV_CACHE_DIR"):
        return Path(os.environ["TRITONCONV_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tritonconv"


def shipped_dir() -> Path:
    """``autotune_cache/`` beside the package in a source checkout, else the installed package data."""
    source_tree = Path(__file__).resolve().parent.parent / "autotune_cache"
    if (source_tree / "__init__.py").exists():
        return source_tree
    return Path(str(importlib.resources.files("tritonconv.autotune_cache")))


def file_name(device_name: str, version: str | None = None) -> str:
    """The cache file of a GPU model under a Triton version (default: this process's)."""
    return f"{re.sub(r'[^A-Za-z0-9]+', '_', device_name).strip('_')}__triton-{version or triton.__version__}.json"


def entry(problem: Problem, config: Config, ms: float, timing: str = "cuda_graph",
          timed: list[tuple[Config, float]] | None = None, search: str | None = None) -> dict:
    """A cache entry: the winning ``config``, its time and how that time was taken (``timing``), every config the
    tuning ``timed`` with its milliseconds (``candidates``: what the cost model is fitted and judged on), and which
    search timed them (``search``: ``"full"``, every candidate, or ``"top N"``, the model's shortlist)."""
    out = {"config": vars(config).copy(), "ms": ms, "bucket": problem.bucket(), "timing": timing}
    if timed:
        out["candidates"] = [{"config": vars(cfg).copy(), "ms": t} for cfg, t in timed]
    if search:
        out["search"] = search
    return out


def timing_of(value: dict) -> str:
    """How an entry's time was taken: ``"cuda_graph"`` or ``"host"`` (entries from before the field)."""
    return value.get("timing", "host")


_warned: set[str] = set()


def _warn_once(path: Path, why: str) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        warnings.warn(f"tritonconv: ignoring tuning cache {path}: {why}", RuntimeWarning, stacklevel=3)


def read(path: Path, device_name: str, version: str | None = None) -> dict[str, dict]:
    """The valid entries of one cache file ({} when it is missing or unusable, with one warning), written for
    ``device_name`` under Triton ``version`` (default: this process's)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        _warn_once(path, f"unreadable ({err})")
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        _warn_once(path, "not a tritonconv cache file")
        return {}
    found = (data.get("format"), data.get("device"), data.get("triton"))
    wanted = (FORMAT, device_name, version or triton.__version__)
    if found != wanted:
        _warn_once(path, f"written for (format, device, triton) = {found}, expected {wanted}")
        return {}
    entries = {}
    for key, value in data["entries"].items():
        try:
            if isinstance(value.get("choice"), str):  # a measured choice between paths
                entries[key] = value
                continue
            Config.from_dict(value["config"])
            entries[key] = value
        except (AttributeError, TypeError, KeyError, ValueError):
            _warn_once(path, f"malformed entry {key!r}")
    return entries


# (device name, Triton version) -> (exact key -> config or choice, bucket key -> config)
_tables: dict[tuple[str, str | None], tuple[dict, dict]] = {}


def _table(device_name: str, version: str | None = None) -> tuple[dict, dict]:
    if (device_name, version) not in _tables:
        exact: dict[str, Config] = {}
        bucket: dict[str, Config] = {}
        shipped = shipped_dir()
        for directory in (shipped, user_dir()):  # user entries override shipped ones
            for key, value in read(directory / file_name(device_name, version), device_name, version).items():
                if "choice" in value:
                    exact[key] = value["choice"]
                    continue
                if directory == shipped and timing_of(value) != "cuda_graph":
                    continue  # may have won by chance, against older kernels: tuning redoes it
                cfg = Config.from_dict(value["config"])
                exact[key] = cfg
                bucket.setdefault(value.get("bucket", ""), cfg)
        _tables[device_name, version] = (exact, bucket)
    return _tables[device_name, version]


def lookup(device_name: str, problem: Problem, version: str | None = None) -> tuple[Config, str] | None:
    """``(config, "cache")`` for an exact hit, ``(config, "bucket")`` for a bucket hit, else None; from the
    files of Triton ``version`` (default: this process's, the only one a launch may use)."""
    exact, bucket = _table(device_name, version)
    if (cfg := exact.get(problem.key())) is not None:
        return cfg, "cache"
    if (cfg := bucket.get(problem.bucket())) is not None:
        return cfg, "bucket"
    return None


def lookup_choice(device_name: str, key: str) -> str | None:
    """A measured choice between code paths (e.g. ``"fused"``), exact key only."""
    value = _table(device_name)[0].get(key)
    return value if isinstance(value, str) else None


def store(device_name: str, entries: dict[str, dict], directory: Path | None = None) -> Path:
    """Merge ``entries`` into the device's cache file in ``directory`` (default: the user cache)."""
    directory = Path(directory or user_dir())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(device_name)
    with filelock.FileLock(str(path) + ".lock"):
        merged = read(path, device_name)
        merged.update(entries)
        data = {"format": FORMAT, "device": device_name, "triton": triton.__version__, "entries": merged}
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    for table in [k for k in _tables if k[0] == device_name]:  # re-read on the next lookup
        del _tables[table]
    return path


def clear_memory() -> None:
    """Forget what this process has read (the files stay)."""
    _tables.clear()
    _warned.clear()
