"""ildata's own environments, registered with gymnasium when this package is imported.

Code that makes an env from an id starting with `ildata/` imports `algos.envs` first.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from algos.envs.tabular import CliffWorldEnv, RandomMDPEnv, TabularModelEnv

ENV_IDS: dict[str, str] = {
    "ildata/CliffWorld-v0": "algos.envs.tabular:CliffWorldEnv",
    "ildata/RandomMDP-v0": "algos.envs.tabular:RandomMDPEnv",
}

for _env_id, _entry_point in ENV_IDS.items():
    if _env_id not in registry:
        # No TimeLimit wrapper: the fixed horizon is part of the MDP and the env truncates itself.
        register(id=_env_id, entry_point=_entry_point)

__all__ = ["ENV_IDS", "CliffWorldEnv", "RandomMDPEnv", "TabularModelEnv"]
