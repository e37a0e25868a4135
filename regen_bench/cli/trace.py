"""``regen-bench trace``: one test user's conversational trace from a saved model."""

from __future__ import annotations

import argparse

import regen_bench.cli._common as common


def _configure(parser: argparse.ArgumentParser) -> None:
    from regen_bench.resolve import DEFAULT_DATASET
    from regen_bench.trace import DEFAULT_TOP_K

    parser.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        required=True,
        help="saved model folder (e.g. a lumen save_dir)",
    )
    parser.add_argument("--user", required=True, help="user id (a test user of the dataset)")
    common.add_dataset(parser, default=DEFAULT_DATASET)
    parser.add_argument("--narrative", default=None, help="narrative type (default: the model's)")
    parser.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help="recommended items to show (default: %(default)s)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=None, help="narrative length cap")
    common.add_threads(parser)


def _trace(args: argparse.Namespace) -> int:
    from regen_bench.trace import trace

    common.apply_threads(args)
    print(
        trace(
            args.model,
            args.user,
            args.dataset,
            narrative=args.narrative,
            data_dir=args.data_dir,
            top_k=args.top_k,
            max_new_tokens=args.max_new_tokens,
        )
    )
    return 0


COMMANDS = (
    common.Command(
        "trace",
        help="conversational trace of one test user from a saved model (paper Figure 6)",
        configure=_configure,
        handler=_trace,
    ),
)
