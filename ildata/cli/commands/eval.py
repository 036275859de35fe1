"""`ildata eval RUN_OR_POLICY --env ENV_ID --episodes N`: the evaluation `ildata train` ends with."""

from __future__ import annotations

import argparse
import json

EXAMPLES = """examples:
  ildata eval runs/bc-cartpole --env CartPole-v1 --episodes 20
  ildata eval expert:pendulum-sac --episodes 50 --json
  ildata eval random --env CartPole-v1 --dataset datasets/cartpole-expert
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
        help="evaluate a run folder, SB3 zip, shipped expert (expert:NAME) or 'random': mean/std return and normalised score",
        description=(
            "Episodes are reset with seeds SEED, SEED+1, ... The normalised score uses the expert and random "
            "returns recorded by the run's dataset (or by --dataset)."
        ),
    )
    p.add_argument("policy", help="run folder, policy folder, SB3 zip, expert:NAME (a shipped expert), or 'random'")
    p.add_argument("--env", dest="env_id", help="gymnasium env id (default: the run's evaluation env, else the policy's)")
    p.add_argument("--episodes", type=int, default=20, help="episodes (default 20)")
    p.add_argument("--seed", type=int, default=100_000, help="seed of the first episode (default 100000, as train)")
    p.add_argument("--num-envs", type=int, default=8, help="parallel envs (default 8)")
    p.add_argument("--dataset", help="dataset whose expert/random returns normalise the score")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the policy's mode")
    p.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from algos.policies import evaluate, format_report, load_policy, policy_env_id, policy_path, reference_returns, score_report
    from algos.train import quiet_third_party
    from ildata.episode import DataError

    args.error_subject = args.policy
    run_dir = policy_path(args.policy)
    references: dict[str, float | None] = {"expert_return": None, "random_return": None}
    env_id = args.env_id
    if (run_dir / "dataset.json").exists():  # a run folder: its dataset's references and env
        recorded = json.loads((run_dir / "dataset.json").read_text())
        references = {k: recorded.get(k) for k in references}
        env_id = env_id or recorded.get("env_id")
    if (run_dir / "config.yaml").exists() and args.env_id is None:
        import yaml

        env_id = yaml.safe_load((run_dir / "config.yaml").read_text()).get("env") or env_id
    if args.dataset:
        import ildata

        references = reference_returns(ildata.load(args.dataset))
    env_id = env_id or policy_env_id(args.policy)
    if env_id is None:
        raise DataError("no env: pass --env ENV_ID")
    with quiet_third_party():
        policy = load_policy(args.policy, env_id=env_id, deterministic=not args.stochastic, seed=args.seed)
        report = score_report(evaluate(policy, env_id, args.episodes, seed=args.seed, num_envs=args.num_envs), **references)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
