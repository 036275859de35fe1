"""`ildata prefs export|import`: preference queries for people to answer, and a reward learned from their answers.

export SOURCE OUT: fragment pairs from a dataset (drawn uniformly over every window) or from a
preference_comparisons run folder (its saved pairs), written as OUT/queries.parquet, an unfilled
label sheet OUT/labels.csv (or .jsonl) and, where the env renders rgb_array, a PNG strip or GIF per
fragment in OUT/images/: a dataset's fragments are replayed from their episodes' reset seeds; a
run's are drawn from their stored observations where those are the env's whole state (Pendulum,
CartPole); otherwise the command says why there are no images.

import QUERIES LABELS OUT: the filled sheet's preferences (left/right/equal/skip) join the queries;
a reward ensemble is trained on them offline (no env) and saved in OUT with the labelled
preference file; `--relabel DATASET DST` writes a new dataset with the learned reward.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLES = """examples:
  ildata prefs export datasets/pendulum-expert queries/ --pairs 50 --length 40
  ildata prefs export runs/prefs-pendulum-<stamp> queries/ --format jsonl
  ildata prefs import queries/ queries/labels.csv reward/ --epochs 50
  ildata prefs import queries/ queries/labels.csv reward/ --relabel datasets/pendulum-expert relabelled/
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prefs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
        help="export preference queries for people to label; learn a reward from the filled-in labels",
        description=__doc__,
    )
    sub = p.add_subparsers(dest="prefs_command", required=True)
    e = sub.add_parser("export", help="write fragment pairs, a label sheet to fill in and images")
    e.add_argument("source", help="ildata dataset folder, or a preference_comparisons run folder")
    e.add_argument("out", help="folder to write (queries.parquet, labels.csv|jsonl, images/)")
    e.add_argument("--pairs", type=int, default=50, help="pairs to draw from a dataset (default 50)")
    e.add_argument("--length", type=int, default=50, help="fragment length in steps, for a dataset (default 50)")
    e.add_argument("--seed", type=int, default=0, help="seed of the fragment draw (default 0)")
    e.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="label sheet format (default csv)")
    e.add_argument("--images", choices=("png", "gif", "none"), default="png", help="one PNG strip or GIF per fragment (default png)")
    e.add_argument("--env", dest="env_id", help="env id to replay in (default: the dataset's)")
    e.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    e.set_defaults(func=run_export)
    i = sub.add_parser("import", help="learn a reward from a filled-in label sheet (offline, no env)")
    i.add_argument("queries", help="folder `prefs export` wrote (its queries.parquet)")
    i.add_argument("labels", help="the filled-in label sheet (.csv or .jsonl): pair_id,label with left/right/equal/skip")
    i.add_argument("out", help="folder to write: preferences.parquet, reward_net/, reward.json")
    i.add_argument("--epochs", type=int, default=50, help="passes over the labelled pairs (default 50)")
    i.add_argument("--ensemble", type=int, default=1, help="reward nets in the ensemble (default 1)")
    i.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffles (default 0)")
    i.add_argument("--relabel", nargs=2, metavar=("DATASET", "DST"), help="write DST: DATASET with the learned reward")
    i.add_argument("--overwrite", action="store_true", help="replace OUT (and DST) if they exist")
    i.set_defaults(func=run_import)


def strip_picks(frames: int) -> np.ndarray:
    """The (at most 6, evenly spaced) frames a PNG strip shows."""
    return np.linspace(0, frames - 1, min(6, frames)).round().astype(int)


def _strip(frames: np.ndarray, images: str, dst: Path) -> None:
    from PIL import Image

    from ildata.render import write_gif

    if images == "gif":
        write_gif(frames, dst.with_suffix(".gif"), fps=15)
        return
    strip = Image.fromarray(np.concatenate(list(frames[strip_picks(len(frames))]), axis=1))
    scale = min(1.0, 160 / strip.height)  # small files: a person compares them side by side
    strip.resize((max(1, round(strip.width * scale)), max(1, round(strip.height * scale)))).save(dst.with_suffix(".png"))


def run_export(args: argparse.Namespace) -> int:
    import ildata
    from algos.preferences import QUERIES_FILE, PreferenceDataset, fragment, write_label_sheet
    from ildata.episode import DataError
    from ildata.fsutil import atomic_output

    args.error_subject = args.source
    source = Path(args.source)
    run_file = source / "preferences.parquet"
    dataset: Any = None
    if run_file.is_file():
        queries = PreferenceDataset.load(run_file)
        queries.labels = np.full(len(queries), np.nan)
    else:
        if not source.exists():
            raise DataError("no such file or directory")
        if args.pairs < 1:
            raise DataError(f"--pairs: must be at least 1, got {args.pairs}")
        dataset = ildata.load(source)
        frags = fragment(dataset.to_batch(), args.length, 2 * args.pairs, np.random.default_rng(args.seed))
        if frags.too_short:
            print(f"{frags.too_short} of {len(dataset)} episodes are shorter than {args.length} steps: no fragment from them")
        halves = np.arange(args.pairs), np.arange(args.pairs, 2 * args.pairs)
        queries = PreferenceDataset(
            frags.take(halves[0]),
            frags.take(halves[1]),
            np.full(args.pairs, np.nan),
            np.arange(args.pairs),
            dataset.observation_space,
            dataset.action_space,
            dataset.env_id,
        )
    env_id = args.env_id or queries.env_id
    with atomic_output(args.out, overwrite=args.overwrite) as tmp:
        queries.save(tmp / QUERIES_FILE)
        write_label_sheet(queries.pair_ids, tmp / f"labels.{args.format}")
        note = "no images"
        if args.images != "none":
            note = _export_images(queries, dataset, env_id, args.images, tmp / "images")
    print(f"wrote {args.out}: {len(queries)} pairs in {QUERIES_FILE}, labels.{args.format} to fill in (left/right/equal/skip), {note}")
    return 0


def _pendulum_state(env: Any, obs: np.ndarray, act: np.ndarray | None) -> None:
    env.unwrapped.state = np.array([np.arctan2(obs[1], obs[0]), obs[2]])
    env.unwrapped.last_u = None if act is None else float(np.asarray(act).reshape(-1)[0])  # the torque arrow


def _cartpole_state(env: Any, obs: np.ndarray, act: np.ndarray | None) -> None:
    env.unwrapped.state = np.asarray(obs, dtype=np.float64).copy()


# Envs whose full state is the observation: a stored fragment renders without a replay.
STATE_SETTERS = {"Pendulum-v1": _pendulum_state, "CartPole-v1": _cartpole_state, "seals/CartPole-v0": _cartpole_state}


def _stored_state_frames(env: Any, env_id: str, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray, images: str) -> np.ndarray:
    """A fragment's frames, each rendered from its stored observation (`STATE_SETTERS`): all
    length + 1 for a GIF, only the ones a PNG strip shows otherwise."""
    from ildata.render import render_frame

    setter = STATE_SETTERS[env_id]
    states, actions = [*obs, next_obs[-1]], [*acts, None]
    picks = strip_picks(len(states)) if images == "png" else np.arange(len(states))
    frames = []
    for t in picks:
        setter(env, states[t], actions[t])
        frames.append(render_frame(env, env_id))
    return np.stack(frames)


def _export_images(queries: Any, dataset: Any, env_id: str | None, images: str, folder: Path) -> str:
    """One image per fragment, and a note on what was written (or why nothing could be).

    Dataset fragments: their episode is replayed from its reset seed (`ildata.render.replay`, which
    also says when the replay drifts from the data). A run's fragments cannot be replayed (the
    steps before a fragment are not stored), so they are drawn from their stored observations
    where the observation is the env's whole state (`STATE_SETTERS`: Pendulum, CartPole)."""
    import os

    from ildata.episode import DataError
    from ildata.render import replay

    if env_id is None:
        return "no images (no env id: pass --env ENV_ID)"
    if dataset is None and env_id not in STATE_SETTERS:
        return (
            f"no images (a run's fragments cannot be replayed, since the steps before them are not stored, and {env_id}'s "
            f"state cannot be set from an observation; images work for {', '.join(STATE_SETTERS)})"
        )
    folder.mkdir()
    length = queries.left.length
    try:
        if dataset is None:
            from ildata.envs import make_env

            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
            env = make_env(env_id, render_mode="rgb_array")
            try:
                env.reset(seed=0)
                for side, frags in (("left", queries.left), ("right", queries.right)):
                    for i, pair_id in enumerate(queries.pair_ids):
                        frames = _stored_state_frames(env, env_id, frags.obs[i], frags.acts[i], frags.next_obs[i], images)
                        _strip(frames, images, folder / f"pair-{int(pair_id):06d}-{side}")
            finally:
                env.close()
            return f"{2 * len(queries)} {images.upper()} images in images/ (drawn from the stored states)"
        seeds = np.asarray(dataset.to_batch().seeds if dataset.to_batch().seeds is not None else [])
        index = {int(s): i for i, s in enumerate(seeds) if s >= 0}
        replays: dict[int, np.ndarray] = {}
        for side, frags in (("left", queries.left), ("right", queries.right)):
            for pair_id, seed, start in zip(queries.pair_ids, frags.seeds, frags.starts, strict=True):
                if int(seed) not in index:
                    return "no images (episodes without a recorded reset seed cannot be replayed)"
                if int(seed) not in replays:
                    replays[int(seed)] = replay(dataset[index[int(seed)]], env_id)[0]
                _strip(replays[int(seed)][start : start + length + 1], images, folder / f"pair-{int(pair_id):06d}-{side}")
    except DataError as exc:
        return f"no images ({exc})"
    return f"{2 * len(queries)} {images.upper()} images in images/ (replayed from the episodes' seeds)"


def run_import(args: argparse.Namespace) -> int:
    import json

    import torch

    import ildata
    from algos.online.reward_nets import RewardNetConfig
    from algos.preferences import QUERIES_FILE, PreferenceDataset, RewardEnsemble, apply_labels, train_preferences
    from algos.runtime import run_threads, seed_everything
    from ildata.episode import DataError
    from ildata.fsutil import atomic_output

    args.error_subject = args.labels
    queries_path = Path(args.queries) / QUERIES_FILE
    if not queries_path.is_file():
        raise DataError(f"no {QUERIES_FILE} (not a folder `ildata prefs export` wrote)", subject=args.queries)
    labels_path = Path(args.labels)
    if not labels_path.is_file():
        raise DataError("no such file or directory")
    data = apply_labels(PreferenceDataset.load(queries_path), labels_path)
    if len(data) == 0:
        raise DataError("no pair is labelled left, right or equal", subject=labels_path)
    with run_threads(1):  # torch, BLAS and OpenMP on one core, as a `threads: 1` recipe
        seed_everything(args.seed, threads=1)
        ensemble = RewardEnsemble(data.observation_space, data.action_space, RewardNetConfig(hidden=(64, 64)), args.ensemble)
        stats = train_preferences(ensemble, data, epochs=args.epochs, batch_size=32, rng=np.random.default_rng(args.seed))
    with atomic_output(args.out, overwrite=args.overwrite) as tmp:
        data.save(tmp / "preferences.parquet")
        ensemble.save(tmp / "reward_net")
        meta = {"ensemble_size": args.ensemble, "pairs": len(data), "labels_file": str(labels_path), **stats}
        (tmp / "reward.json").write_text(json.dumps(meta, indent=2))
    print(f"wrote {args.out}: reward learned from {len(data)} labelled pairs (training accuracy {stats['reward_train_accuracy']:.3f})")
    if args.relabel:
        from algos.density import relabel

        source = ildata.load(args.relabel[0])
        with torch.no_grad():
            relabel(
                source,
                lambda obs, acts, next_obs, t=None: ensemble.predict(obs, acts, next_obs),
                args.relabel[1],
                overwrite=args.overwrite,
                reward_name=f"preferences:{Path(args.out).name}",
            )
        print(f"wrote {args.relabel[1]}: {args.relabel[0]} with the learned reward")
    return 0
