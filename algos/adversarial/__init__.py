"""The one adversarial imitation trainer GAIL (`algos.gail`) and AIRL (`algos.airl`) stand on.

A discriminator learns to tell expert transitions (from any ildata dataset) from the learner's
own, and the learner (PPO, TRPO or SAC from `algos.online.learners`) trains on a reward made
from its logit, through the online layer: `make_vec_env` (seeded episodes, the step counter
every budget is checked against) and `RewardVecEnvWrapper` (one batched reward call per vector
step; the env's own reward stays in `info["env_reward"]`). Subclasses say only what differs:
the net (`build_net`), the discriminator logit (`disc_logits`), the reward the learner sees
(`policy_reward`) and the reward kept after training (`reward_test`).

Rounds (on-policy learners; one round is `steps_per_round` env steps, whole rollouts):
- `round_order: disc_first` (imitation PR #731): collect -> train the discriminator on the
  round's transitions -> relabel the collected rewards with it -> the learner's update.
- `round_order: learner_first` (imitation 1.0.1): collect -> learner update on the rewards of
  the discriminator as it was -> train the discriminator.
Off-policy (SAC, DAC-style): the discriminator trains every round on replay samples vs demos,
and every replay batch the learner samples is relabelled with the current discriminator
(`algos.online.replay.RelabelledReplayBuffer`).

Horizons (`horizons`): variable-horizon demonstrations or a learner episode that terminates
raise `VariableHorizonError` unless `allow_variable_horizon: true` or `absorbing: true` (DAC's
fix: demonstration and learner episodes continue to the env's horizon in a flagged absorbing
state the discriminator sees; the learner is paid the discounted reward of the absorbing steps it
enters by terminating).

Reward normalisation (`normalize_reward`) is applied to the reward the learner sees (imitation
1.0.1's GAIL path bypassed its normaliser): running statistics of the learner's raw rewards,
updated once per round, frozen in between, saved with the run. The discriminator's input
normaliser (`disc_normalize_obs`) holds the demonstrations' statistics by default: running
statistics of the learner's own states (which drift without bound on seals/CartPole once the
pole falls) squeeze every expert state into one point and made GAIL collapse
(benchmarks/RESULTS-adversarial.md). `reward_from` trains a fresh learner on a saved reward, as
the plain RL algorithm does (`algos.expert`).

Where things are: `config` (the settings), `trainer` (`fit`, one round top to bottom),
`rounds` (the run's state and the SB3 callback ending rounds), `discriminator` (its training),
`transitions` (the discriminator's data), `horizons` (the checks above); the saved reward's
loading and relabelling are `algos.saved_reward`'s.
"""

from algos.adversarial.config import AdversarialConfig, default_learner
from algos.adversarial.horizons import env_terminates
from algos.adversarial.trainer import POLICY_DIR, REWARD_DIR, STATE_FILE, AdversarialTrainer
from algos.adversarial.transitions import TransitionBatch, concat
from algos.online.normalizer import obs_statistics
from algos.saved_reward import load_reward, relabel_with_run

__all__ = [
    "POLICY_DIR",
    "REWARD_DIR",
    "STATE_FILE",
    "AdversarialConfig",
    "AdversarialTrainer",
    "TransitionBatch",
    "concat",
    "default_learner",
    "env_terminates",
    "load_reward",
    "obs_statistics",
    "relabel_with_run",
]
