"""Imitation algorithms trained from ildata stores, driven by recipe YAML files.

`algos.base` holds the common interface and the `ALGORITHMS` registry, `algos.recipe` the
strict recipe parser, `algos.train` the run-folder writer, `algos.policies` policy loading and
evaluation. This package depends on `ildata`; `ildata` reaches it only lazily, from its CLI.
"""
