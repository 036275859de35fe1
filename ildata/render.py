"""`ildata render DATASET --episode K OUT.gif`: an episode as an animated GIF.

Image observations (uint8, height x width [x channels]) are the frames themselves. Otherwise the
episode is replayed in its env from its recorded reset seed with `render_mode="rgb_array"`, and
every replayed observation is compared with the stored one: a replay that drifts from the data
(another env version, a non-deterministic env, a wrong seed) is reported with the first step
where it differs, so a GIF is never silently of something else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ildata.episode import DataError, Episode, flatten_obs
from ildata.fsutil import atomic_output, check_destination

if TYPE_CHECKING:
    from ildata.store import TrajectoryDataset

# Stored and replayed observations agree when within this tolerance (float32 round trips).
ATOL = 1e-5
RTOL = 1e-5


@dataclass
class RenderResult:
    """What `render_episode` wrote: how many frames, from where, and whether the replay held."""

    path: Path
    frames: int
    source: str  # "stored images" or "replay of ENV_ID (seed S)"
    diverged_at: int | None = None  # first step whose replayed observation differs from the stored one
    max_error: float = 0.0  # largest absolute difference at that step


def image_key(obs: Any) -> str | None:
    """The observation entry that holds frames (uint8, (T+1, H, W) or (T+1, H, W, 1|3|4)), if any;
    "" for a plain image observation."""
    for key, values in flatten_obs(obs).items():
        if values.dtype == np.uint8 and (values.ndim == 3 or (values.ndim == 4 and values.shape[-1] in (1, 3, 4))):
            return key
    return None


def _as_rgb(frames: np.ndarray) -> np.ndarray:
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return frames[..., :3]


def write_gif(frames: np.ndarray, dst: Path, *, fps: float = 30.0, overwrite: bool = False) -> Path:
    """Frames (T, H, W, 3) uint8 -> an animated GIF at `dst`, atomically."""
    from PIL import Image

    if len(frames) == 0:
        raise DataError("no frames to write", subject=dst)
    images = [Image.fromarray(np.ascontiguousarray(frame)) for frame in frames]
    with atomic_output(dst, overwrite=overwrite, folder=False) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
    return dst


def replay(episode: Episode, env_id: str) -> tuple[np.ndarray, int | None, float]:
    """Replay `episode`'s actions in `env_id` from its seed: (frames, first diverging step, error there).

    Stops comparing (but keeps rendering) after the first divergence."""
    import os

    from ildata.envs import make_env

    # Off-screen rendering: without these SDL (pygame, used by classic-control envs) looks for a
    # display and an audio device and prints its complaints on stderr.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

    if episode.seed is None or episode.seed < 0:
        raise DataError("the episode has no recorded reset seed, so it cannot be replayed (image observations render without one)")
    stored = flatten_obs(episode.obs)
    env = make_env(env_id, render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=int(episode.seed))
        frames = [render_frame(env, env_id)]
        diverged, error = _compare(obs, stored, 0)
        for t, action in enumerate(episode.acts):
            obs, *_ = env.step(action.item() if action.ndim == 0 else action)
            frames.append(render_frame(env, env_id))
            if diverged is None:
                diverged, error = _compare(obs, stored, t + 1)
    finally:
        env.close()
    return np.stack(frames), diverged, error


def render_frame(env: Any, env_id: str) -> np.ndarray:
    try:
        frame = env.render()
    except Exception as exc:  # gymnasium's DependencyNotInstalled (pygame, mujoco), or a broken renderer
        raise DataError(f"env {env_id} cannot render rgb_array frames ({type(exc).__name__}: {exc})") from None
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise DataError(f"env {env_id} rendered {type(frame).__name__}, not an rgb_array frame")
    return frame.astype(np.uint8, copy=False)


def _compare(obs: Any, stored: dict[str, np.ndarray], t: int) -> tuple[int | None, float]:
    """(t, error) when the replayed observation at step t differs from the stored one, else (None, 0)."""
    replayed = flatten_obs(obs if isinstance(obs, dict) else np.asarray(obs))
    worst = 0.0
    for key, values in stored.items():
        if key not in replayed:
            return t, float("inf")
        mine = np.asarray(replayed[key], dtype=np.float64)
        theirs = np.asarray(values[t], dtype=np.float64)
        if mine.shape != theirs.shape:
            return t, float("inf")
        if not np.allclose(mine, theirs, atol=ATOL, rtol=RTOL):
            worst = max(worst, float(np.max(np.abs(mine - theirs))))
    return (t, worst) if worst else (None, 0.0)


def render_episode(
    dataset: TrajectoryDataset, index: int, dst: str | Path, *, env_id: str | None = None, fps: float = 30.0, overwrite: bool = False
) -> RenderResult:
    """Write episode `index` of `dataset` (a TrajectoryDataset) as a GIF at `dst`."""
    dst = Path(dst)
    check_destination(dst, overwrite=overwrite)  # before a replay that may take a while
    if not -len(dataset) <= index < len(dataset):
        raise DataError(f"episode {index} out of range: the dataset has {len(dataset)} episodes")
    episode = dataset[index]
    key = image_key(episode.obs)
    if key is not None:
        frames = _as_rgb(flatten_obs(episode.obs)[key])
        return RenderResult(write_gif(frames, dst, fps=fps, overwrite=overwrite), len(frames), "stored images")
    env_id = env_id or dataset.env_id
    if env_id is None:
        raise DataError("the dataset records no env id and its observations are not images: pass --env ENV_ID")
    frames, diverged, error = replay(episode, env_id)
    write_gif(frames, dst, fps=fps, overwrite=overwrite)
    return RenderResult(dst, len(frames), f"replay of {env_id} (seed {episode.seed})", diverged, error)
