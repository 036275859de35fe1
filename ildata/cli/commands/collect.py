"""`ildata collect --policy POLICY --env ENV_ID --episodes N DST`: roll a policy out into a store."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  ildata collect --policy expert:cartpole-ppo --env CartPole-v1 --episodes 50 demos/
  ildata collect --policy runs/bc-cartpole --env CartPole-v1 --episodes 20 --seed 1000 bc-rollouts/
  ildata collect --policy random --env Pendulum-v1 --episodes 20 random/
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "collect",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
        help="roll a policy out in gymnasium vector envs and save the episodes as an ildata store",
        description=(
            "POLICY is a stable-baselines3 zip, an ildata run folder, a shipped expert (expert:NAME), or 'random'. Episode k is reset with "
            "seed SEED+k; terminated/truncated flags, the final observation, rewards and seeds are recorded, "
            "with the policy's and a random policy's mean return (the normalised score's ends)."
        ),
    )
    p.add_argument("dst", help="destination dataset folder")
    p.add_argument("--policy", required=True, help="SB3 zip, ildata run folder, expert:NAME, or 'random'")
    p.add_argument("--env", dest="env_id", required=True, help="gymnasium env id (seals/... and ildata/... ids work)")
    p.add_argument("--episodes", type=int, required=True, help="number of episodes to record")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    p.add_argument("--num-envs", type=int, default=8, help="parallel envs in the vector env (default 8)")
    p.add_argument("--random-episodes", type=int, default=20, help="episodes of the random baseline (default 20)")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the policy's mode")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from algos.policies import load_policy, policy_path  # lazy: the data layer never imports torch at load time
    from ildata.collect import collect
    from ildata.store import sha256_path

    args.error_subject = args.policy
    policy = load_policy(args.policy, env_id=args.env_id, deterministic=not args.stochastic, seed=args.seed)
    args.error_subject = args.dst
    provenance: dict[str, object] = {"deterministic": not args.stochastic}
    if args.policy != "random" and policy_path(args.policy).exists():
        provenance["policy_sha256"] = sha256_path(policy_path(args.policy))
    ds = collect(
        policy,
        args.env_id,
        args.episodes,
        args.dst,
        seed=args.seed,
        num_envs=args.num_envs,
        random_episodes=args.random_episodes,
        policy_name=str(args.policy),
        provenance=provenance,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    if not args.quiet:
        c = ds.info["collection"]
        print(
            f"{ds.path}: {len(ds)} episodes, {ds.num_transitions} transitions; "
            f"return {c['expert_mean_return']:.2f} ± {c['expert_std_return']:.2f} "
            f"(random policy {c['random_mean_return']:.2f})"
        )
    return 0
