"""Entry point of `ftjob`. Each subcommand lives in its own module with a `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand modules, imported lazily so `ftjob validate` never pays for torch or kubernetes.
COMMANDS = {
    "validate": "finetune_operator.cli.validate",
    "plan": "finetune_operator.cli.plan",
    "train": "finetune_operator.cli.train",
    "status": "finetune_operator.cli.cluster",
    "logs": "finetune_operator.cli.cluster",
    "watch": "finetune_operator.cli.cluster",
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser, with only the chosen subcommand's module imported."""
    parser = argparse.ArgumentParser(
        prog="ftjob",
        description="Validate, plan and run LLM fine-tuning (SFT, DPO, GRPO, KTO) as the finetune-operator does.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, module in COMMANDS.items():
        if chosen == name:
            importlib.import_module(module).register(sub, name)
        else:
            sub.add_parser(name, help=f"see `ftjob {name} --help`")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ftjob`; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
