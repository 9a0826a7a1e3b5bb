"""`ftjob train`: run a training plan (what the trainer image, HF Jobs and the Local backend execute)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction, name: str) -> None:
    """Add `ftjob train --plan plan.json` (or `--plan-env FTJOB_PLAN`)."""
    from finetune_training.runner import add_arguments

    parser = subparsers.add_parser(
        name,
        help="run a training plan (TRL SFT/DPO/GRPO/KTO), printing JSON progress lines",
        description=(
            "Train as the plan says, pushing checkpoints and the result to the Hub. Progress is printed as "
            "one JSON object per line. With `resources.gpuCount` > 1 the run is re-launched under "
            "`torchrun` (one process per GPU)."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported on use: torch and TRL load only when training.
    from finetune_training.launch import launch

    return launch(args.plan, args.plan_env)
