"""d3rlpy datasets (its h5 dump format, `ReplayBuffer.dump` version 2.1): the reader/writer
entry module that `ildata.formats.READERS`, `WRITERS` (`--to d3rlpy`) and algos/d3rlpy_adapter.py use.

The implementation lives in the `ildata.formats.d3rlpy_dump` package, whose docstring describes
how episodes map to d3rlpy's rows.
"""

from __future__ import annotations

from ildata.formats.d3rlpy_dump.layout import COLUMNS, DATASET_VERSION, HDF5_SIGNATURE, ILDATA, sniff
from ildata.formats.d3rlpy_dump.reader import read, read_chunks
from ildata.formats.d3rlpy_dump.writer import D3rlpyArrays, to_d3rlpy_arrays, write

__all__ = [
    "COLUMNS",
    "DATASET_VERSION",
    "HDF5_SIGNATURE",
    "ILDATA",
    "D3rlpyArrays",
    "read",
    "read_chunks",
    "sniff",
    "to_d3rlpy_arrays",
    "write",
]
