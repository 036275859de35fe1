"""Preferences over trajectory fragments (Christiano et al. 2017): the parts preference comparisons needs.

- `fragments`: `fragment(batch, length, n, rng)` draws fixed-length fragments uniformly over
  every valid window (`Fragments`, each a copy of its own).
- `oracle`: `SyntheticGatherer`, Bradley-Terry labels over the env's true fragment returns.
- `dataset`: `PreferenceDataset`, fragment pairs and labels as one Parquet file.
- `reward_model`: `RewardEnsemble` and `train_preferences` (batched Bradley-Terry), with the
  held-out checks and active selection's `disagreement`.
- `labels`: human label sheets (CSV/JSONL) for exported queries (`ildata prefs export/import`).
"""

from algos.preferences.dataset import PREFERENCES_FORMAT, SIDES, PreferenceDataset
from algos.preferences.fragments import ARRAYS, Fragments, concat_fragments, discounted_returns, fragment
from algos.preferences.labels import LABEL_WORDS, LABELS, QUERIES_FILE, apply_labels, read_label_sheet, write_label_sheet
from algos.preferences.oracle import SyntheticGatherer
from algos.preferences.reward_model import (
    RewardEnsemble,
    bradley_terry_loss,
    disagreement,
    held_out_metrics,
    make_optimizers,
    pair_tensor,
    preference_accuracy,
    train_preferences,
)

__all__ = [
    "ARRAYS",
    "LABELS",
    "LABEL_WORDS",
    "PREFERENCES_FORMAT",
    "QUERIES_FILE",
    "SIDES",
    "Fragments",
    "PreferenceDataset",
    "RewardEnsemble",
    "SyntheticGatherer",
    "apply_labels",
    "bradley_terry_loss",
    "concat_fragments",
    "discounted_returns",
    "disagreement",
    "fragment",
    "held_out_metrics",
    "make_optimizers",
    "pair_tensor",
    "preference_accuracy",
    "read_label_sheet",
    "train_preferences",
    "write_label_sheet",
]
