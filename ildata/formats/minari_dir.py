"""Minari datasets (arrow, parquet and hdf5 backends): the reader/writer entry module that
`ildata.formats.READERS`, `ildata.conversion` and the `--to minari` writer use.

The implementation lives in the `ildata.formats.minari` package, one module per backend.
"""

from __future__ import annotations

from ildata.formats.minari.metadata import (
    BACKENDS,
    HDF5_FILE,
    METADATA,
    MINARI_VERSION,
    dataset_id_for,
    minari_root,
    resolve_minari_spec,
    sniff,
)
from ildata.formats.minari.reader import read, read_chunks
from ildata.formats.minari.writer import register_namespace, write

__all__ = [
    "BACKENDS",
    "HDF5_FILE",
    "METADATA",
    "MINARI_VERSION",
    "dataset_id_for",
    "minari_root",
    "read",
    "read_chunks",
    "register_namespace",
    "resolve_minari_spec",
    "sniff",
    "write",
]
