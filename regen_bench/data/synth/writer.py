"""Writing a simulated store as a REGEN file, with the statistics the CLI prints."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from regen_bench.data.regen import write_records
from regen_bench.data.schema import Narratives, UserRecord
from regen_bench.data.synth.records import iter_synthetic
from regen_bench.data.synth.shoppers import DEFAULT_HABITS, Habits
from regen_bench.data.synth.world import DEFAULT_ITEMS, DEFAULT_SEED, DEFAULT_USERS


@dataclass(frozen=True)
class SynthStats:
    """Summary of a written synthetic dataset, for the CLI."""

    users: int
    items: int
    interactions: int
    items_per_user: float
    critique_coverage: float
    fingerprint: str
    path: str = ""
    size_bytes: int = 0

    def lines(self) -> list[str]:
        out = [
            f"users:             {self.users:,}",
            f"items:             {self.items:,}",
            f"interactions:      {self.interactions:,}",
            f"items per user:    {self.items_per_user:.2f}",
            f"critique coverage: {self.critique_coverage:.1%} of adjacent pairs",
            f"fingerprint:       sha256:{self.fingerprint}",
        ]
        if self.path:
            out.insert(0, f"wrote {self.path} ({self.size_bytes / 1e6:.2f} MB)")
        return out


def _bare(rec: UserRecord) -> UserRecord:
    """The record without critiques and narratives (reviews are kept)."""
    return UserRecord(
        rec.user_id,
        [dataclasses.replace(i, critique=None) for i in rec.interactions],
        rec.items,
        Narratives(),
        scores={},
    )


def write_synthetic(
    out_path: str | os.PathLike[str],
    users: int = DEFAULT_USERS,
    items: int = DEFAULT_ITEMS,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
    bare: bool = False,
    habits: Habits = DEFAULT_HABITS,
) -> SynthStats:
    """Synthesize and write a REGEN-format file (gzip if ``.gz``); return its statistics.

    Records are written as they are made, so memory stays bounded by the (text-free) world.
    ``bare`` leaves critiques and narratives out (reviews are kept): the input of
    ``regen-bench inpaint``, as ``data prepare`` would give from raw reviews.
    """
    counts = {"users": 0, "pairs": 0, "critiques": 0, "interactions": 0}
    asins: set[str] = set()

    def counted() -> Iterator[UserRecord]:
        records: Iterator[UserRecord] = iter_synthetic(users, items, seed, habits)
        if progress:
            from tqdm.auto import tqdm

            records = tqdm(records, total=users, unit="user", desc="synth")
        for rec in records:
            if bare:
                rec = _bare(rec)
            counts["users"] += 1
            counts["interactions"] += len(rec.interactions)
            counts["pairs"] += len(rec.interactions) - 1
            counts["critiques"] += sum(i.critique is not None for i in rec.interactions[1:])
            asins.update(i.item_id for i in rec.interactions)
            yield rec

    fingerprint = write_records(counted(), out_path)
    return SynthStats(
        users=counts["users"],
        items=len(asins),
        interactions=counts["interactions"],
        items_per_user=counts["interactions"] / counts["users"],
        critique_coverage=counts["critiques"] / counts["pairs"] if counts["pairs"] else 0.0,
        fingerprint=fingerprint,
        path=str(out_path),
        size_bytes=Path(out_path).stat().st_size,
    )
