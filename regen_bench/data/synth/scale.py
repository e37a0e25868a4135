"""The scale engine: a synthetic REGEN world of Clothing size, written block by block.

The ``mini`` engine (:mod:`regen_bench.data.synth.world`) simulates one purchase at a time in
Python (about 4 ms a user, 80 minutes for REGEN Clothing's 1.17M users). This engine keeps its
catalog (:func:`build_catalog`), category tree and text templates, and simulates the users in
blocks of :data:`BLOCK_USERS` with numpy (:mod:`scale_shoppers`), each block from its own
stream seeded by (seed, block index). The file is a pure function of (users, items, seed) for
a given numpy version, whatever the number of worker processes; memory is bounded by a block.

Modules: ``scale_catalog`` (the catalog as columns and sampling tables), ``scale_shoppers``
(a block's purchases, ratings and times), ``scale_text`` (its REGEN records), this one (blocks
in worker processes, written in order to one file, all or nothing).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np

from regen_bench.data.regen import dumps_record
from regen_bench.data.synth import scale_catalog, scale_shoppers
from regen_bench.data.synth.scale_text import Writer
from regen_bench.data.synth.writer import SynthStats
from regen_bench.fileio import atomic_write
from regen_bench.progress import Progress

#: Users per block. Part of the generator, not a setting: each block draws from its own
#: stream, so another block size gives another (equally valid) world.
BLOCK_USERS = 25_000
#: REGEN Clothing (the paper's Table 1): users and items of ``data synth --preset clothing``.
CLOTHING_USERS = 1_168_735
CLOTHING_ITEMS = 376_847
#: ``data synth --preset`` name -> (users, items).
PRESETS = {"clothing": (CLOTHING_USERS, CLOTHING_ITEMS)}
#: Processes that make blocks (the output does not depend on it).
DEFAULT_WORKERS = 2
#: gzip level of a ``.gz`` output: level 6 takes 2.7x the CPU of level 1 (about 3 minutes
#: rather than 1 for Clothing's 8.8 GB of JSON) for a file 30% smaller.
GZIP_LEVEL = 1
#: Records joined before they are compressed (fewer, larger zlib calls).
_CHUNK_USERS = 512


@dataclass(frozen=True)
class _Job:
    """What every block of one file depends on (sent once to each worker)."""

    users: int
    items: int
    seed: int
    block_users: int
    gz: bool
    bare: bool


@dataclass(frozen=True)
class _Part:
    """One block as written: its bytes (a gzip member for ``.gz``) and its counts."""

    payload: bytes
    users: int
    interactions: int
    critiques: int
    bought: bytes  # np.packbits of the items bought in the block


class _Maker:
    """Makes the blocks of one job (holds the catalog and per-item text, built once)."""

    def __init__(self, job: _Job):
        self.job = job
        self.cat = scale_catalog.build(job.items, job.seed)
        self.writer = Writer(self.cat, job.bare)

    def __call__(self, index: int) -> _Part:
        job = self.job
        start = index * job.block_users
        stop = min(job.users, start + job.block_users)
        block = scale_shoppers.simulate(self.cat, job.users, job.seed, start, stop, index)
        comp = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if job.gz else None
        out: list[bytes] = []
        buf: list[bytes] = []
        for rec in self.writer.records(block):
            buf.append(dumps_record(rec))
            if len(buf) == _CHUNK_USERS:
                out.append(comp.compress(b"".join(buf)) if comp else b"".join(buf))
                buf.clear()
        out.append(comp.compress(b"".join(buf)) + comp.flush() if comp else b"".join(buf))
        bought = np.zeros(self.cat.size, bool)
        bought[block.items] = True
        critiques = 0 if job.bare else int((block.changes >= 0).sum())
        return _Part(
            b"".join(out), stop - start, len(block.items), critiques, np.packbits(bought).tobytes()
        )


_worker_maker: _Maker | None = None


def _start_worker(job: _Job) -> None:
    global _worker_maker
    # Ctrl-C goes to the whole process group: the parent stops the pool and removes the
    # temp file; workers dying on their own would only add tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_maker = _Maker(job)


def _work(index: int) -> _Part:
    assert _worker_maker is not None, "worker not initialised"
    return _worker_maker(index)


class _Blocks:
    """The blocks of a job in order: made here, or by worker processes a few blocks ahead.

    A context manager: the pool starts on entry (before any progress bar starts a thread)
    and is stopped on exit, also on an error or Ctrl-C.
    """

    def __init__(self, job: _Job, workers: int):
        self.job, self.workers = job, workers
        self.count = -(-job.users // job.block_users)
        self.pool: Pool | None = None

    def __enter__(self) -> _Blocks:
        if self.workers > 1 and self.count > 1:
            # fork where there is one: workers then need no importable main script (spawn
            # re-imports it) and start at once; they build their own catalog either way.
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self.pool = ctx.Pool(
                min(self.workers, self.count), initializer=_start_worker, initargs=(self.job,)
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def __iter__(self) -> Iterator[_Part]:
        if self.pool is None:
            maker = _Maker(self.job)
            for index in range(self.count):
                yield maker(index)
            return
        # At most workers + 1 blocks are in flight, so memory stays bounded when writing
        # is slower than making.
        pool = self.pool
        ahead = min(self.count, self.workers + 1)
        pending = deque(pool.apply_async(_work, (i,)) for i in range(ahead))
        submitted = len(pending)
        while pending:
            part = pending.popleft().get()
            if submitted < self.count:
                pending.append(pool.apply_async(_work, (submitted,)))
                submitted += 1
            yield part


def write_scale(
    out_path: str | os.PathLike[str],
    users: int,
    items: int,
    seed: int = 0,
    *,
    bare: bool = False,
    workers: int = DEFAULT_WORKERS,
    progress: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> SynthStats:
    """Simulate and write a REGEN file (gzip level :data:`GZIP_LEVEL` if ``.gz``).

    The file appears only once complete (a temp file renamed into place; an error or Ctrl-C
    removes it). ``bare`` leaves critiques and narratives out, as ``write_synthetic``.
    ``on_progress`` is called with the number of users written after each block.
    """
    if users < 1 or items < scale_catalog.MIN_ITEMS:
        raise ValueError(f"need users >= 1 and items >= {scale_catalog.MIN_ITEMS}")
    if items > users:
        raise ValueError(
            f"items ({items:,}) > users ({users:,}): every item is introduced by its own user"
        )
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out_path = Path(out_path)
    gz = out_path.name.endswith(".gz")
    job = _Job(users, items, seed, BLOCK_USERS, gz, bare)
    digest = hashlib.sha256()
    totals = {"users": 0, "interactions": 0, "critiques": 0}
    bought = np.zeros(items, bool)

    def chunks(blocks: _Blocks, bar: Progress) -> Iterator[bytes]:
        for part in blocks:
            _hash(digest, part.payload, gz)
            totals["users"] += part.users
            totals["interactions"] += part.interactions
            totals["critiques"] += part.critiques
            bought[:] |= np.unpackbits(np.frombuffer(part.bought, np.uint8), count=items) > 0
            yield part.payload
            bar.update(part.users)
            if on_progress is not None:
                on_progress(totals["users"])

    with _Blocks(job, workers) as blocks:
        bar = Progress("synth", total=users, unit="user", enabled=progress)
        try:
            atomic_write(out_path, chunks(blocks, bar))
        finally:
            bar.close()
    pairs = totals["interactions"] - totals["users"]
    return SynthStats(
        users=totals["users"],
        items=int(bought.sum()),
        interactions=totals["interactions"],
        items_per_user=totals["interactions"] / totals["users"],
        critique_coverage=totals["critiques"] / pairs if pairs else 0.0,
        fingerprint=digest.hexdigest(),
        path=str(out_path),
        size_bytes=out_path.stat().st_size,
    )


def _hash(digest: hashlib._Hash, payload: bytes, gz: bool) -> None:
    """Add a block's uncompressed bytes to the fingerprint (a gzip member is inflated a
    slice at a time, so a block's whole text is never in memory here)."""
    if not gz:
        digest.update(payload)
        return
    inflate = zlib.decompressobj(31)
    step = 1 << 20
    for at in range(0, len(payload), step):
        digest.update(inflate.decompress(payload[at : at + step]))
    digest.update(inflate.flush())
