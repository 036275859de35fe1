"""Imitation algorithms trained from ildata stores, driven by recipe YAML files.

From the bottom up (of these, each imports only those listed before it):

- `algos.runtime`: process-wide settings a run depends on (seeds, thread pools, quiet imports);
- `algos.typed_config`: YAML data -> typed config dataclasses, strictly;
- `algos.policies`: policy loading (the `POLICY_LOADERS` registry) and evaluation;
- `algos.base`: the common interface, the `ALGORITHMS` registry and the one persistence path
  (`Algorithm.save` / `load_algorithm`);
- `algos.recipe`: the recipe parser;
- `algos.train`: running a recipe into a run folder; `algos.sweep`: many runs as Ray tasks.

`algos.online` is the layer every online algorithm stands on (seeded vector envs, the batched
reward wrapper, the rollout recorder, RL learners and their configs, reward nets), and
`algos.tabular_mdp` the tabular model and planner that `algos.mce_irl` trains through. This
package depends on `ildata`; `ildata` reaches it only lazily, from its CLI.
"""
