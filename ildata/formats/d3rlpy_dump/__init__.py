"""d3rlpy datasets: its h5 dump format (`ReplayBuffer.dump`, version 2.1), read and written.

d3rlpy keeps, per episode, `observations_i` (T rows, one per action: no final observation),
`actions_i` (2-D), `rewards_i` (T, 1) and a scalar `terminated_i`; tuple observations are
`observations_i_j`. Its transition picker uses all T steps of a terminated episode (with a zero
next observation) but only T-1 of any other episode, whose last observation serves as the
final next observation.

Writing (lossless; extra `ildata/...` datasets, which d3rlpy ignores, carry what it cannot hold):
- a terminated episode becomes T rows with `terminated=True` (terminal wins when gymnasium also
  reported truncation); its final observation goes to `ildata/final_observations`;
- any other episode becomes T+1 rows: its real final observation plus one padding step (its
  last action repeated, reward 0), so d3rlpy samples exactly its T real transitions.
Reading a dump written elsewhere (no `ildata/` group) recovers what d3rlpy itself uses:
- time-out episodes: the last step is dropped (its next observation was never stored, and d3rlpy
  never samples it) and its observation becomes the final one;
- terminated episodes: the final observation is unknown and is set to zeros, as d3rlpy's own
  transition picker does.
d3rlpy stores dtypes as given (it casts to float32 only when sampling), so they round-trip; infos
have no place in the format and are not written.

Files are read and written with h5py directly (the layout is four datasets per episode): going
through `d3rlpy.dataset.io` would import torch and d3rlpy into the data layer for no gain.

- layout.py: the dump's dataset names, `sniff`, and guarded access to its HDF5 members
- reader.py: d3rlpy -> ildata (`read`, `read_chunks`)
- writer.py: ildata -> d3rlpy (`write`, `to_d3rlpy_arrays`)
`ildata.formats.d3rlpy_h5` is the entry module the format registries use.
"""
