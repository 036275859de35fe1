"""The layer every online imitation algorithm (DAgger, GAIL, AIRL, preference comparisons) stands on.

One module per responsibility, used in this order (innermost first)::

    venv = make_vec_env(env_id, num_envs, seed=seed)        # vec_env: seeded episodes, step counter
    venv = EpisodeRecorder(venv)                            # recorder: rollouts -> EpisodeBatch
    venv = RewardVecEnvWrapper(venv, reward_net.reward_fn)  # reward_wrapper: learned reward
    learner = make_learner(LearnerConfig(...), venv)        # learners: PPO / SAC / TRPO / DQN
    learner.learn(n_env_steps)                              # never more than n env steps

The recorder sits inside the reward wrapper so it records the env's true rewards. Beside them:
`learner_configs` (the typed `learner:` configs), `normalizer` (the one running/fixed
normaliser), `reward_nets` (reward and discriminator MLPs), `replay` (off-policy replay
relabelled with the current learned reward), `budget` (the step budget).
Modules import torch / stable-baselines3 at import time; `ildata/` never imports this package.
"""

from algos.base import quiet_import

quiet_import("stable_baselines3")  # once, without legacy gym's banner (see quiet_import)
