"""How much more memory this process may take under its resource limits, so that what a writer
holds at once (a store shard) can be sized to fit a limited process instead of failing half-way.

Linux counts a process's address space against RLIMIT_AS (`ulimit -v`) and its private writable
mappings against RLIMIT_DATA; `convert` holds about two shards while writing, and loading the
result maps every shard (a store too big for that is checked a shard at a time instead: see
`ildata.conversion.convert`). Without a limit (the usual case) nothing changes: the store's own
shard size (`ildata.store.layout.SHARD_BYTES`) applies.
"""

from __future__ import annotations

from pathlib import Path

# Writing holds a shard, the previous one (its statistics) and one column's copy while a shard is
# assembled, besides a source chunk; the rest of the headroom is left for mapping the written
# store when it is loaded, which needs room for every shard at once (or, for a store bigger than
# that, for one shard at a time while convert checks it).
SHARD_SHARE_OF_HEADROOM = 8
MIN_SHARD_BYTES = 16 << 20  # below this, per-shard overhead outweighs what a smaller shard saves


def _status_bytes(field: str) -> int | None:
    """A `/proc/self/status` size field (VmSize, VmData) in bytes; None where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_headroom() -> int | None:
    """Bytes this process may still map before RLIMIT_AS or RLIMIT_DATA refuses it (None when
    neither is set, or the platform cannot tell)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    headrooms = []
    for limit_name, field in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
        limit = getattr(resource, limit_name, None)
        if limit is None:
            continue
        soft, _hard = resource.getrlimit(limit)
        used = _status_bytes(field)
        if soft != resource.RLIM_INFINITY and used is not None:
            headrooms.append(max(soft - used, 0))
    return min(headrooms) if headrooms else None


def shard_bytes_within_limits() -> int | None:
    """A store shard size that leaves room to write and then load the store under this
    process's memory limits, or None when the store's default shard size already fits."""
    headroom = memory_headroom()
    if headroom is None:
        return None
    from ildata.store import layout

    fitting = max(MIN_SHARD_BYTES, headroom // SHARD_SHARE_OF_HEADROOM)
    return fitting if fitting < layout.SHARD_BYTES else None
