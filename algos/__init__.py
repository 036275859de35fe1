"""Imitation algorithms trained from ildata stores, driven by recipe YAML files.

`algos.base` holds the common interface, the `ALGORITHMS` registry and the one persistence path
(`Algorithm.save` / `load_algorithm`), `algos.recipe` the strict recipe parser, `algos.train`
the run-folder writer, `algos.policies` policy loading (the `POLICY_LOADERS` registry) and
evaluation, `algos.online` the layer every online algorithm stands on (seeded vector envs, the
batched reward wrapper, the rollout recorder, RL learners and their configs, reward nets),
`algos.tabular_mdp` the tabular model and planner that `algos.mce_irl` trains through. This package depends on `ildata`; `ildata`
reaches it only lazily, from its CLI.
"""
