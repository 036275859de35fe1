"""Minari datasets, all three storage backends, read and written without minari's per-episode
Python decoding. One module per responsibility, as minari's own `dataset/_storages` split them:

    metadata.py       dataset ids and paths, metadata.json, spaces, metadata-vs-data checks
    rows.py           minari's row layout <-> EpisodeBatch (shared by every backend), JPEG frames
    arrow_backend.py  arrow and parquet backends (per-episode pyarrow files)
    hdf5_backend.py   hdf5 backend (one main_data.hdf5)
    reader.py         `read`: metadata, then the backend, then the checks
    writer.py         `write`, `register_namespace`

`ildata.formats.minari_dir` is the reader entry module the format registry knows.
"""
