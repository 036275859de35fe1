"""Policies as plain callables obs -> action, loaded from a run folder, an SB3 zip, `random`,
or a shipped expert named `expert:NAME` (a folder of the repository's datasets/experts/).

Every policy acts on a batch (leading axis) and, called with one observation, on that one.
A run folder keeps its policy under `policy/`: `policy.json` says which loader rebuilds it
(`kind`, an entry of the `POLICY_LOADERS` registry) plus the spaces; weights sit beside it as
torch state dicts (loaded with `weights_only=True`) or .npy arrays, never pickles. The policy
alone is what `ildata collect/eval` need; `algos.base.load_algorithm` rebuilds the whole
algorithm (the policy included) from the same folder.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from algos.runtime import quiet_import
from ildata.collect import RandomPolicy, returns_summary, rollout
from ildata.envs import env_spaces
from ildata.episode import DataError, Obs, flatten_obs
from ildata.registry import Registry
from ildata.spaces import space_from_dict, space_to_dict
from ildata.store import TrajectoryDataset

POLICY_FILE = "policy.json"

# policy.json's fields, with its two spaces already rebuilt as gymnasium spaces.
PolicyMeta = dict[str, Any]
PolicyLoader = Callable[[Path, PolicyMeta], "Policy"]

# policy.json "kind" -> the function rebuilding that kind of policy from its folder. An algorithm
# saving a new kind registers its loader with `@POLICY_LOADERS.register("kind")` in its module
# (and lists the module here if it is not already listed).
POLICY_LOADERS: Registry[PolicyLoader] = Registry(
    "policy kind", ("algos.policies", "algos.bc", "algos.tabular_mdp", "algos.online.learners")
)

# Shipped experts: `expert:NAME` names the policy folder datasets/experts/NAME of this repository
# (found from the algos package, so it works from any working directory).
EXPERT_PREFIX = "expert:"
EXPERTS_DIR = Path(__file__).resolve().parents[1] / "datasets" / "experts"
EXPERT_FILE = "expert.json"  # beside policy.json: recipe, command, measured returns


class Policy:
    """Base class: `act(obs_batch) -> actions`; calling it also accepts a single observation."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, deterministic: bool = True) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.deterministic = deterministic

    def act(self, obs: Obs) -> np.ndarray:
        raise NotImplementedError

    def _is_single(self, obs: Obs) -> bool:
        from algos.sampler import space_leaves

        key, leaf = space_leaves(self.observation_space)[0]
        value = np.asarray(flatten_obs(obs)[key])
        return value.ndim == len(leaf.shape)

    def __call__(self, obs: Obs) -> np.ndarray:
        if self._is_single(obs):
            batched = {k: np.asarray(v)[None] for k, v in flatten_obs(obs).items()}
            return self.act(batched if set(batched) != {""} else batched[""])[0]
        return self.act(obs)


class Random(Policy):
    """Uniform random actions (seeded)."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, seed: int = 0) -> None:
        super().__init__(observation_space, action_space, deterministic=False)
        self._sample = RandomPolicy(action_space, seed)

    def act(self, obs: Obs) -> np.ndarray:
        return self._sample(obs)


class SB3Policy(Policy):
    """A stable-baselines3 model's `predict`, or its deterministic mode computed straight from its
    modules where that is exact (see `_direct_actions`)."""

    def __init__(self, model: Any, deterministic: bool = True) -> None:
        super().__init__(model.observation_space, model.action_space, deterministic)
        self.model = model
        self._direct = _direct_actions(self) if deterministic else None

    def act(self, obs: Obs) -> np.ndarray:
        if self._direct is not None:
            return self._direct(obs)
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return np.asarray(action)


def _direct_actions(policy: SB3Policy) -> Callable[[Obs], np.ndarray] | None:
    """For a deterministic SB3 PPO/A2C/TRPO (Discrete or Box actions), SAC or DQN policy on Box
    observations, the same modes (DQN: the greedy action) computed straight from its modules; None otherwise.

    SB3's `predict` builds a distribution object and converts the batch on every call (about 1 ms
    for 2 observations, more than the env step): DAgger labels every vector step with its expert,
    and collect/eval call their policy on every step too.
    """
    import torch

    if not isinstance(policy.observation_space, gym.spaces.Box):
        return None
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.dqn.policies import DQNPolicy
    from stable_baselines3.sac.policies import SACPolicy

    net = policy.model.policy
    space = policy.action_space
    if isinstance(net, ActorCriticPolicy) and isinstance(space, (gym.spaces.Discrete, gym.spaces.Box)):

        @torch.no_grad()
        def actor_critic(obs: Obs) -> np.ndarray:
            x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
            features = net.extract_features(x, net.pi_features_extractor)
            assert isinstance(features, torch.Tensor)  # one extractor for the actor alone
            out = net.action_net(net.mlp_extractor.forward_actor(features))
            if isinstance(space, gym.spaces.Discrete):
                return out.argmax(1).numpy().astype(space.dtype) + space.start
            return np.clip(out.numpy().reshape((-1, *space.shape)), space.low, space.high)

        return actor_critic
    if isinstance(net, SACPolicy) and isinstance(space, gym.spaces.Box):
        actor = net.actor

        @torch.no_grad()
        def squashed(obs: Obs) -> np.ndarray:
            x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
            mean = actor.mu(actor.latent_pi(actor.extract_features(x, actor.features_extractor)))
            return net.unscale_action(torch.tanh(mean).numpy().reshape((-1, *space.shape)))

        return squashed
    if isinstance(net, DQNPolicy) and isinstance(space, gym.spaces.Discrete):

        @torch.no_grad()
        def greedy(obs: Obs) -> np.ndarray:
            x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
            return net.q_net(x).argmax(1).numpy().astype(space.dtype) + space.start

        return greedy
    return None


# ----------------------------------------------------------------------------- SB3 zips

# `policy_class.__module__` in an SB3 zip -> algorithm classes using policies from that module.
_SB3_ALGOS: dict[str, tuple[str, ...]] = {
    "stable_baselines3.common.policies": ("PPO", "A2C"),
    "stable_baselines3.ppo.policies": ("PPO",),
    "stable_baselines3.sac.policies": ("SAC",),
    "stable_baselines3.td3.policies": ("TD3",),
    "stable_baselines3.dqn.policies": ("DQN",),
}


def _sb3_policy_class(entry: dict[str, Any]) -> tuple[str, type]:
    """The allow-listed policy class an SB3 zip names, without unpickling it."""
    stable_baselines3 = quiet_import("stable_baselines3")

    module_name = entry.get("__module__", "")
    init = str(entry.get("__init__", ""))  # "<function ActorCriticPolicy.__init__ at 0x...>"
    class_name = init.split()[1].split(".")[0] if init.startswith("<function ") else ""
    if module_name not in _SB3_ALGOS or not class_name:
        raise DataError(f"policy class {module_name}.{class_name} is not a stable-baselines3 policy")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise DataError(f"policy class {module_name}.{class_name} not found in stable-baselines3 {stable_baselines3.__version__}")
    return module_name, cls


def _sb3_algorithm(module_name: str, data: dict[str, Any]) -> Any:
    """The algorithm class that saved a zip: PPO, A2C and sb3-contrib's TRPO share policies,
    so their saved hyperparameters tell them apart (TRPO's conjugate gradient, PPO's clip range)."""
    candidates = _SB3_ALGOS[module_name]
    if len(candidates) > 1:
        if "cg_max_steps" in data:
            return quiet_import("sb3_contrib").TRPO
        candidates = ("PPO",) if "clip_range" in data else ("A2C",)
    return getattr(quiet_import("stable_baselines3"), candidates[0])


def _check_space_entry(name: str, entry: dict[str, Any], space: gym.Space) -> None:
    """Compare the readable fields SB3 stores beside a pickled space with the env's space."""
    shape = entry.get("_shape")
    if isinstance(shape, str):  # older SB3 versions store the repr: "[4]", "(4,)"
        shape = [int(d) for d in re.findall(r"\d+", shape)]
    if shape is not None and list(shape) != list(space.shape or ()):
        raise DataError(f"{name}: model was trained on shape {shape}, env has {list(space.shape or ())}")
    if "n" in entry and str(getattr(space, "n", None)) != str(entry["n"]):
        raise DataError(f"{name}: model was trained on n={entry['n']}, env has {getattr(space, 'n', None)}")


def load_sb3(path: str | Path, env_id: str, deterministic: bool = True) -> SB3Policy:
    """Load an SB3 zip without unpickling anything in it.

    SB3 stores spaces, schedules and the policy class as cloudpickle blobs; unpickling them
    would run code from the file. Every such entry is replaced through `custom_objects`:
    spaces come from `env_id` (checked against the readable shape SB3 stores beside them), the
    policy class from an allow-list, schedules by constants (they only matter for training).
    The weights load through `torch.load(weights_only=True)` inside SB3.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a stable-baselines3 zip ({exc})") from None
    observation_space, action_space = env_spaces(env_id)
    module_name, policy_class = _sb3_policy_class(data.get("policy_class", {}))
    custom: dict[str, Any] = {}
    for key, entry in data.items():
        if isinstance(entry, dict) and ":serialized:" in entry:
            custom[key] = None
    _check_space_entry("observation_space", data.get("observation_space", {}), observation_space)
    _check_space_entry("action_space", data.get("action_space", {}), action_space)
    custom.update(
        policy_class=policy_class,
        observation_space=observation_space,
        action_space=action_space,
        learning_rate=0.0,
        lr_schedule=lambda _: 0.0,
        clip_range=0.2,
        exploration_schedule=lambda _: 0.0,
        train_freq=1,  # off-policy algorithms rebuild a TrainFreq from it; unused for inference
    )
    model = _sb3_algorithm(module_name, data).load(path, custom_objects=custom, device="cpu")
    return SB3Policy(model, deterministic)


@POLICY_LOADERS.register("sb3")
def load_sb3_dir(policy_dir: Path, meta: PolicyMeta) -> SB3Policy:
    """A policy folder holding an SB3 model (written by the RL expert trainer, density's PPO)."""
    return load_sb3(policy_dir / meta["file"], meta["env_id"], meta.get("deterministic", True))


# ----------------------------------------------------------------------------- run folders


def write_policy_meta(policy_dir: Path, kind: str, observation_space: gym.Space, action_space: gym.Space, **fields: Any) -> None:
    """Write `policy.json`: the loader kind, both spaces and whatever the loader needs."""
    policy_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "kind": kind,
        "observation_space": space_to_dict(observation_space),
        "action_space": space_to_dict(action_space),
        **fields,
    }
    (policy_dir / POLICY_FILE).write_text(json.dumps(meta, indent=2))


def read_policy_meta(policy_dir: Path) -> PolicyMeta:
    """`policy.json` with its spaces rebuilt; a DataError naming the file when it is unusable."""
    try:
        meta = json.loads((policy_dir / POLICY_FILE).read_text())
    except FileNotFoundError:
        raise DataError(f"{policy_dir}: no {POLICY_FILE} (not an ildata policy folder)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{policy_dir / POLICY_FILE}: invalid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("kind") not in POLICY_LOADERS:
        kind = meta.get("kind") if isinstance(meta, dict) else None
        raise DataError(f"{policy_dir / POLICY_FILE}: unknown policy kind {kind!r} (known: {sorted(POLICY_LOADERS.names())})")
    meta["observation_space"] = space_from_dict(meta["observation_space"])
    meta["action_space"] = space_from_dict(meta["action_space"])
    return meta


def _policy_dir(path: Path) -> Path:
    return path / "policy" if (path / "policy" / POLICY_FILE).exists() else path


def shipped_experts() -> list[str]:
    """Names of the experts shipped in datasets/experts/ (folders holding a policy.json)."""
    if not EXPERTS_DIR.is_dir():
        return []
    return sorted(p.name for p in EXPERTS_DIR.iterdir() if (p / POLICY_FILE).is_file())


def policy_path(spec: str | Path) -> Path:
    """The path a policy spec names: `expert:NAME` -> datasets/experts/NAME, else the path itself."""
    text = str(spec)
    if not text.startswith(EXPERT_PREFIX):
        return Path(spec)
    name = text[len(EXPERT_PREFIX) :]
    if name not in shipped_experts():
        raise DataError(f"{text}: no such shipped expert (shipped: {', '.join(shipped_experts()) or 'none'})")
    return EXPERTS_DIR / name


def policy_env_id(spec: str | Path) -> str | None:
    """The env a policy folder (or `expert:NAME`) was trained in, from its policy.json; else None."""
    if str(spec) == "random":
        return None
    path = policy_path(spec)
    if not path.is_dir():
        return None
    try:
        env_id = json.loads((_policy_dir(path) / POLICY_FILE).read_text()).get("env_id")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return env_id if isinstance(env_id, str) else None


def load_policy(spec: str | Path, *, env_id: str | None = None, deterministic: bool = True, seed: int = 0) -> Policy:
    """`random`, `expert:NAME` (a shipped expert), an SB3 zip (needs `env_id` for its spaces),
    a run folder or its `policy/`."""
    if str(spec) == "random":
        if env_id is None:
            raise DataError("the random policy needs an env (--env)")
        return Random(*env_spaces(env_id), seed=seed)
    path = policy_path(spec)
    if not path.exists():
        raise DataError(f"{path}: no such policy (give a run folder, an SB3 zip, 'random' or expert:NAME)")
    if path.is_file():
        if env_id is None:
            raise DataError(f"{path}: an SB3 zip needs an env (--env) for its spaces")
        return load_sb3(path, env_id, deterministic)
    policy_dir = _policy_dir(path)
    meta = read_policy_meta(policy_dir)
    if env_id is not None:
        check_env_spaces(meta["observation_space"], meta["action_space"], env_id, what="env")
    policy = POLICY_LOADERS[meta["kind"]](policy_dir, meta)
    policy.deterministic = deterministic
    return policy


# ----------------------------------------------------------------------------- evaluation


def check_env_spaces(observation_space: gym.Space, action_space: gym.Space, env_id: str, what: str = "env") -> None:
    """DataError naming `what` when `env_id`'s spaces differ from the data's or policy's."""
    env_obs, env_act = env_spaces(env_id)
    for name, mine, theirs in (("observation", observation_space, env_obs), ("action", action_space, env_act)):
        if space_to_dict(mine) != space_to_dict(theirs) and not _compatible(mine, theirs):
            raise DataError(f"{what}: {env_id} has {name} space {theirs}, expected {mine}")


def _compatible(a: gym.Space, b: gym.Space) -> bool:
    """Same type and shape (bounds may differ, e.g. seals' CartPole vs CartPole-v1)."""
    return type(a) is type(b) and a.shape == b.shape and getattr(a, "n", None) == getattr(b, "n", None)


def evaluate(policy: Callable[[Obs], np.ndarray], env_id: str, episodes: int, seed: int = 0, num_envs: int = 8) -> dict[str, Any]:
    """Mean/std return of `policy` over `episodes` seeded episodes (seeds seed .. seed+episodes-1)."""
    eps = rollout(policy, env_id, episodes, seed=seed, num_envs=num_envs)
    summary: dict[str, Any] = returns_summary(eps)
    summary["returns"] = [float(np.sum(ep.rews)) if ep.rews is not None else 0.0 for ep in eps]
    summary["env_id"] = env_id
    summary["seed"] = seed
    return summary


def normalized_score(mean_return: float, random_return: float | None, expert_return: float | None) -> float | None:
    """(mean - random) / (expert - random): 0 is the random policy, 1 the expert."""
    if random_return is None or expert_return is None or math.isclose(expert_return, random_return):
        return None
    return (mean_return - random_return) / (expert_return - random_return)


def measured_reference_returns(
    expert: Callable[[Obs], np.ndarray], env_id: str, episodes: int, seed: int, observation_space: gym.Space, action_space: gym.Space
) -> dict[str, float | None]:
    """The expert's and a random policy's mean returns on the evaluation's seeds: what an online
    algorithm that has an expert but no dataset scores against."""
    random_policy = Random(observation_space, action_space, seed=seed)
    return {
        "expert_return": float(evaluate(expert, env_id, episodes, seed=seed)["mean"]),
        "random_return": float(evaluate(random_policy, env_id, episodes, seed=seed)["mean"]),
    }


def reference_returns(dataset: TrajectoryDataset) -> dict[str, float | None]:
    """The expert and random mean returns a dataset records (collected data), else what it implies."""
    collection = dataset.info.get("collection") or {}
    expert = collection.get("expert_mean_return")
    if expert is None and dataset.returns is not None:
        expert = float(np.mean(dataset.returns))
    return {"expert_return": expert, "random_return": collection.get("random_mean_return")}


def score_report(result: dict[str, Any], expert_return: float | None, random_return: float | None) -> dict[str, Any]:
    """`evaluate`'s summary plus the reference returns and the normalised score."""
    return {
        **result,
        "expert_return": expert_return,
        "random_return": random_return,
        "normalized_score": normalized_score(result["mean"], random_return, expert_return),
    }


def format_report(report: dict[str, Any]) -> str:
    """One human line for `ildata eval` / `ildata train`."""
    line = f"{report['env_id']}: return {report['mean']:.2f} ± {report['std']:.2f} over {report['n']} episodes"
    if report.get("normalized_score") is not None:
        line += (
            f", normalised score {report['normalized_score']:.3f}"
            f" (random {report['random_return']:.2f}, expert {report['expert_return']:.2f})"
        )
    return line


def p_value_not_above(returns: Sequence[float] | np.ndarray, threshold: float) -> float:
    """One-sided t-test p-value for "the true mean return is at most `threshold`".

    A small value is evidence the policy beats the bar; with identical returns (a deterministic
    policy in a deterministic env) the answer is 0 or 1 directly, since the test is undefined.
    """
    from scipy import stats

    values = np.asarray(returns, dtype=np.float64)
    if np.ptp(values) == 0:
        return 0.0 if values[0] > threshold else 1.0
    return float(stats.ttest_1samp(values, threshold, alternative="greater").pvalue)
