"""``regen-bench data``: synth, info, export, prepare, import and merge (dataset tools)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

import regen_bench.cli._common as common

if TYPE_CHECKING:
    from regen_bench.data.dataset import Dataset

OUT_FILE_HELP = "output REGEN-format file (.jsonl or .gz)"


def _configure_synth(parser: argparse.ArgumentParser) -> None:
    from regen_bench.data.synth import (
        DEFAULT_HABITS,
        DEFAULT_ITEMS,
        DEFAULT_SEED,
        DEFAULT_USERS,
        HABITS,
    )
    from regen_bench.data.synth.scale import DEFAULT_WORKERS, PRESETS

    common.add_out(parser, OUT_FILE_HELP)
    parser.add_argument(
        "--engine",
        choices=["mini", "scale"],
        default=None,
        help="mini (default): the simulator of the packaged mini, one purchase at a time "
        "(~4 ms a user); scale: a vectorised simulator with the same catalog and templates, "
        "for Clothing-size worlds (users in blocks with numpy; docs/data-format.md)",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="clothing: REGEN Clothing's size ({:,} users, {:,} items) with the scale engine, "
        "about 2 GB gzipped; --users/--items still override it".format(*PRESETS["clothing"]),
    )
    parser.add_argument(
        "--users",
        type=int,
        default=None,
        help=f"number of users (default: {DEFAULT_USERS}, or the preset's)",
    )
    parser.add_argument(
        "--items",
        type=int,
        default=None,
        help=f"number of items (default: {DEFAULT_ITEMS}, or the preset's)",
    )
    common.add_seed(parser, DEFAULT_SEED)
    parser.add_argument(
        "--shoppers",
        choices=sorted(HABITS),
        default=DEFAULT_HABITS.name,
        help="how shoppers choose each next purchase (default: %(default)s, the packaged "
        "mini; legacy: the first-order shoppers of the mini before 1.0); mini engine only",
    )
    parser.add_argument(
        "--shopper-set",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="change one shopper knob of --shoppers, repeatable (e.g. noise=0.1); mini engine only",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="processes making blocks of users, scale engine only (default: %(default)s; the "
        "file does not depend on it)",
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="leave critiques and narratives out (reviews kept): input for `regen-bench inpaint`",
    )
    common.add_quiet(parser, "no progress bar (scale engine)")


def _synth(args: argparse.Namespace) -> int:
    from regen_bench.data.synth import DEFAULT_HABITS, DEFAULT_ITEMS, DEFAULT_USERS, HABITS
    from regen_bench.data.synth.scale import PRESETS

    if args.preset and args.engine == "mini":
        raise common.CliError(f"--preset {args.preset} uses the scale engine, not --engine mini")
    engine = "scale" if args.preset else args.engine or "mini"
    users, items = PRESETS[args.preset] if args.preset else (DEFAULT_USERS, DEFAULT_ITEMS)
    users = args.users if args.users is not None else users
    items = args.items if args.items is not None else items
    if engine == "scale":
        if args.shopper_set or args.shoppers != DEFAULT_HABITS.name:
            raise common.CliError("--shoppers and --shopper-set apply to --engine mini only")
        from regen_bench.data.synth.scale import write_scale

        stats = write_scale(
            args.out,
            users=users,
            items=items,
            seed=args.seed,
            bare=args.bare,
            workers=args.workers,
            progress=not args.quiet,
        )
        for line in stats.lines():
            print(line)
        return 0
    from regen_bench.data.synth import write_synthetic

    knobs: dict[str, str] = {}
    for pair in args.shopper_set:
        key, sep, value = pair.partition("=")
        if not sep:
            raise common.CliError(f"--shopper-set {pair!r}: expected KNOB=VALUE")
        knobs[key.strip()] = value.strip()
    try:
        habits = HABITS[args.shoppers].with_values(**knobs) if knobs else HABITS[args.shoppers]
    except ValueError as e:
        raise common.CliError(f"--shopper-set: {e}") from None
    stats = write_synthetic(
        args.out,
        users=users,
        items=items,
        seed=args.seed,
        bare=args.bare,
        habits=habits,
    )
    for line in stats.lines():
        print(line)
    return 0


def _configure_info(parser: argparse.ArgumentParser) -> None:
    common.add_positional_or_option(parser, "dataset", common.DATASET_HELP)
    common.add_data_dir(parser)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print the dataset profile (text lengths, category depth, mean rating...; "
        "reads the file once more), as docs/data-format.md compares mini with REGEN",
    )


def _info(args: argparse.Namespace) -> int:
    from regen_bench.resolve import resolve_dataset

    ds = resolve_dataset(common.positional_or_option(args, "dataset"), args.data_dir)
    lengths = ds.lengths().tolist()
    n = sum(lengths)
    print(f"dataset        {ds.name} ({ds.source})")
    print(f"fingerprint    {ds.fingerprint}")
    print(f"users          {len(ds.users)}")
    print(f"items          {len(ds.catalog)}")
    print(
        f"interactions   {n} ({n / max(len(ds.users), 1):.2f} items/user, "
        f"min {min(lengths, default=0)}, max {max(lengths, default=0)})"
    )
    print(f"critiques      {ds.critique_coverage():.1%} of adjacent pairs (placeholders removed)")
    dropped = ds.report.placeholder_critiques
    shown = ", ".join(f"{json.dumps(s, ensure_ascii=False)} {c}" for s, c in dropped.most_common(5))
    more = f", {len(dropped) - 5} more" if len(dropped) > 5 else ""
    print(f"placeholders   {dropped.total()} dropped{': ' + shown + more if dropped else ''}")
    listed = ", ".join(json.dumps(s, ensure_ascii=False) for s in ds.critique_placeholders)
    print(f"               (read as no critique: {listed}; dataset option critique_placeholders)")
    for field, count in sorted(ds.report.unknown_fields.items()):
        print(f"unknown field  {field}: {count} time(s)")
    if args.profile:
        _print_profile(ds)
    return 0


def _print_profile(ds: Dataset) -> None:
    """The profile block: one statistic a line, read with the placeholders the dataset used."""
    from regen_bench.data.profile import profile
    from regen_bench.data.regen import iter_records

    records = iter_records(ds.source, critique_placeholders=ds.critique_placeholders)
    rows = profile(records).rows()
    width = max(len(name) for name, _ in rows) + 2
    print("profile")
    for name, value in rows:
        print(f"  {name:<{width}}{value}")


def _configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=["hf", "recbole"],
        default="hf",
        help="hf (default): a Hugging Face `datasets` folder of the leave-one-out split "
        "(needs the data extra); recbole: RecBole atomic files OUT/<name>.inter and "
        "OUT/<name>.item, <name> being OUT's folder name (docs/data-format.md)",
    )
    common.add_positional_or_option(parser, "dataset", common.DATASET_HELP)
    common.add_positional_or_option(parser, "out", "output folder, new or empty", "--output")
    common.add_data_dir(parser)
    common.add_quiet(parser)


def _export(args: argparse.Namespace) -> int:
    from regen_bench.resolve import resolve_dataset

    ds = resolve_dataset(common.positional_or_option(args, "dataset"), args.data_dir)
    out = common.positional_or_option(args, "out")
    if args.format == "recbole":
        from regen_bench.data.export_recbole import export_recbole

        print(f"wrote {out} (recbole): {export_recbole(ds, out).summary()}")
        return 0
    from regen_bench.data.export import export_hf

    counts = export_hf(ds, out, progress=not args.quiet)
    print(f"wrote {out} ({args.format}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _configure_prepare(parser: argparse.ArgumentParser) -> None:
    from regen_bench.data.amazon import DEFAULT_MAX_LEN, DEFAULT_MIN_INTERACTIONS

    parser.add_argument(
        "--reviews", required=True, help="reviews file, e.g. Office_Products.json.gz"
    )
    parser.add_argument(
        "--meta", required=True, help="metadata file, e.g. meta_Office_Products.json.gz"
    )
    common.add_out(parser, OUT_FILE_HELP)
    parser.add_argument(
        "--min-interactions",
        type=int,
        default=DEFAULT_MIN_INTERACTIONS,
        help="drop users with fewer purchases (default: %(default)s)",
    )
    parser.add_argument(
        "--max-len",
        type=int,
        default=DEFAULT_MAX_LEN,
        help="keep the most recent N purchases (default: %(default)s)",
    )
    parser.add_argument(
        "--k-core",
        type=int,
        default=None,
        metavar="K",
        help="iterative k-core: users and items with at least K interactions (default: off)",
    )
    parser.add_argument(
        "--skip-bad-lines",
        action="store_true",
        help="skip and count malformed lines instead of stopping at the first",
    )
    common.add_quiet(parser)


def _prepare(args: argparse.Namespace) -> int:
    from regen_bench.data.amazon import prepare

    stats = prepare(
        args.reviews,
        args.meta,
        args.out,
        min_interactions=args.min_interactions,
        max_len=args.max_len,
        k_core=args.k_core,
        skip_bad_lines=args.skip_bad_lines,
        progress=not args.quiet,
    )
    for line in stats.lines():
        print(line)
    return 0


def _configure_import(parser: argparse.ArgumentParser) -> None:
    from regen_bench.data import recbole

    parser.add_argument(
        "--format", choices=["recbole"], required=True, help="input format (recbole)"
    )
    parser.add_argument(
        "dir", metavar="DIR", help="RecBole dataset folder with <name>.inter, <name>.item"
    )
    common.add_out(parser, OUT_FILE_HELP)
    parser.add_argument(
        "--min-interactions",
        type=int,
        default=recbole.DEFAULT_MIN_INTERACTIONS,
        help="drop users with fewer interactions (default: %(default)s, keep all as RecBole)",
    )
    for what, setting, default in (
        ("user", "USER_ID_FIELD", recbole.DEFAULT_USER_FIELD),
        ("item", "ITEM_ID_FIELD", recbole.DEFAULT_ITEM_FIELD),
        ("time", "TIME_FIELD", recbole.DEFAULT_TIME_FIELD),
        ("rating", "RATING_FIELD", recbole.DEFAULT_RATING_FIELD),
    ):
        parser.add_argument(
            f"--{what}-field",
            default=default,
            metavar="NAME",
            help=f"{what} column, RecBole's {setting} (default: %(default)s)",
        )
    parser.add_argument(
        "--time-key",
        choices=recbole.TIME_KEYS,
        default="exact",
        help="sort by the exact timestamp (default), or by RecBole's own key: its float32 copy "
        "of the timestamp, min-max normalised first with float32-normalized (RecBole's ml-100k "
        "config); equal keys keep file order",
    )
    parser.add_argument(
        "--ignore-ratings",
        action="store_true",
        help=f"write every rating as {recbole.IMPLICIT_RATING:g} (ratings outside 1-5)",
    )
    parser.add_argument(
        "--no-item-file",
        action="store_true",
        help="import without a <name>.item file (item titles empty)",
    )


def _import(args: argparse.Namespace) -> int:
    from regen_bench.data.recbole import import_recbole

    stats = import_recbole(
        args.dir,
        args.out,
        min_interactions=args.min_interactions,
        user_field=args.user_field,
        item_field=args.item_field,
        time_field=args.time_field,
        rating_field=args.rating_field,
        ignore_ratings=args.ignore_ratings,
        require_item_file=not args.no_item_file,
        time_key=args.time_key,
    )
    for line in stats.lines():
        print(line)
    return 0


def _configure_merge(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "shards",
        nargs="+",
        metavar="SHARD",
        help="the output of every shard of one `inpaint --shard` or `rate --shard` run",
    )
    common.add_out(parser, "merged REGEN-format file (.jsonl or .gz)")
    parser.add_argument(
        "--dataset",
        default=None,
        metavar="PATH",
        help="the shards' input file, where it is not at the path their manifests record",
    )


def _merge(args: argparse.Namespace) -> int:
    from regen_bench.shards import merge

    for line in merge(args.shards, args.out, dataset=args.dataset):
        print(line)
    return 0


SUBCOMMANDS = (
    common.Command(
        "synth",
        help="regenerate the simulated `mini` store (or a variant), or a Clothing-size one",
        description="Simulate the office-supplies store behind `mini` and write it as a REGEN "
        "file. --engine mini (the default) is the simulator of the packaged mini; --engine "
        "scale simulates users in blocks with numpy (same catalog, category tree and text "
        "templates) for large worlds, e.g. --engine scale --users 73046 --items 23553 (1/16 of "
        "Clothing); --preset clothing writes REGEN Clothing's size with it in minutes.",
        configure=_configure_synth,
        handler=_synth,
    ),
    common.Command(
        "info",
        help="statistics of a dataset (name or path)",
        configure=_configure_info,
        handler=_info,
    ),
    common.Command(
        "export",
        help="write a dataset as a Hugging Face `datasets` folder or RecBole atomic files",
        description="Write DATASET into the folder OUT. --format hf: the leave-one-out split as "
        "a `datasets.load_from_disk` folder (train/validation/test splits, catalog in "
        "OUT/items, README card). --format recbole: RecBole atomic files, every purchase in "
        "OUT/<name>.inter in sequence order and the catalog in OUT/<name>.item, the inverse "
        "of `data import --format recbole`.",
        configure=_configure_export,
        handler=_export,
    ),
    common.Command(
        "prepare",
        help="Amazon Reviews 2018 raw files -> REGEN-format user sequences",
        description="Build time-sorted, de-duplicated user sequences (a repeated purchase of "
        "an item keeps the first) from Amazon Reviews 2018 review and metadata files, and "
        "write them as a REGEN-format file (empty narratives, no critiques).",
        configure=_configure_prepare,
        handler=_prepare,
    ),
    common.Command(
        "import",
        help="RecBole atomic files (.inter, .item) -> REGEN-format user sequences",
        description="Convert a RecBole dataset folder DIR (<name>.inter, <name>.item, optional "
        "<name>.user) into a REGEN-format file: each user's interactions by timestamp, equal "
        "timestamps in file order (RecBole's stable sort), item title and categories from the "
        ".item columns (docs/data-format.md).",
        configure=_configure_import,
        handler=_import,
    ),
    common.Command(
        "merge",
        help="join the outputs of `inpaint --shard` or `rate --shard` into one file",
        description="Join the outputs of all N shards of one `inpaint --shard I/N` or `rate "
        "--shard I/N` run into OUT, in the input's user order: the file the unsharded run "
        "writes, byte for byte, with one manifest (and the failures, score table and usage "
        "merged). Shards of different runs (prompts, model, seed, input, options, shard "
        "count), a missing or repeated shard, or a shard changed since its run are refused "
        "and nothing is written (docs/scaling.md).",
        configure=_configure_merge,
        handler=_merge,
    ),
)

COMMANDS = (common.group("data", "dataset tools", SUBCOMMANDS),)
