"""The scale engine's shoppers: a block of users simulated together with numpy.

At step ``t`` every user of the block with more than ``t`` purchases draws a move, and each
move draws its items for all the users that chose it at once. After the first purchase the
moves are, with fixed probabilities (:data:`MOVE_P`):

- *refine*: a variant of the previous item differing in exactly one of colour, pack size,
  price tier (the brand's other line) or brand, in the same leaf. Only these pairs share
  >= 4 category levels, and only they carry a critique (naming that change);
- *complement*: an item of a complement leaf of the previous item's leaf (pens -> refills),
  in the previous item's price tier more often than not;
- *taste*: an item of one of the user's favourite leaves, or of a leaf of the user's two
  branches, mostly in the user's price tier;
- *popular*: an item drawn by Zipf-like popularity over the whole catalog;
- *noise*: an item drawn uniformly.

A move that finds nothing allowed in a few draws (every refinement already bought, ...)
falls through to the next one in that order. Every move but refine leaves the previous
item's level-4 group, and no user buys an item twice. The first purchase is taste-driven
or popular, except for the users that introduce a catalog item (:func:`cover`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regen_bench.data.synth.scale_catalog import DOMAIN, Catalog, cum_rows, draw
from regen_bench.data.synth.vocabulary import BRANCHES, PERSONAS

MOVES = ("refine", "complement", "taste", "popular", "noise")
#: Probabilities of :data:`MOVES` after the first purchase. Refine's is REGEN Clothing's
#: critique coverage (18.6% of adjacent pairs); a refinement that finds every variant of the
#: previous item bought already (under 1% of them at 6,000 items, ~0 at Clothing's 376,847)
#: becomes a complement.
MOVE_P = (0.186, 0.38, 0.27, 0.114, 0.05)
#: Move code of a first purchase (after the codes of :data:`MOVES`).
FIRST = len(MOVES)
#: Purchases per user: MIN_LENGTH + k, k geometric with ratio LENGTH_DECAY truncated at
#: MAX_LENGTH - MIN_LENGTH; the mean is 9.21 (REGEN Clothing's purchases per user).
MIN_LENGTH = 5
MAX_LENGTH = 50
LENGTH_DECAY = 0.8081555
#: Share of first purchases that are popular picks (the rest follow the user's taste).
FIRST_POPULAR = 0.3
#: Share of taste picks from a favourite leaf (the rest: any leaf of the user's branches).
FAVOURITE_SHARE = 0.8
#: Share of taste picks in the user's price tier, and of complements in the previous item's.
TIER_LOYALTY = 0.7
#: Draws a move makes before it falls through to the next one.
RETRIES = 4
#: Day-resolution purchase times within 2014-2018 (as the ``mini``).
T0 = 1388534400
T1 = 1546214400
DAY = 86400

_PERSONAS = list(PERSONAS.values())
_PERSONA_CUM = np.cumsum([p.share for p in _PERSONAS])[None, :]
_PERSONA_BRANCH = cum_rows([[p.branches.get(b, 0.0) for b in BRANCHES] for p in _PERSONAS])
_PERSONA_TIER = cum_rows([list(p.tiers) for p in _PERSONAS])
_MOVE_CUM = np.cumsum(MOVE_P)[None, :]
_ID_CHARS = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", np.uint8)
#: User ids: "A", seven characters that are a bijection of the user's index (so ids never
#: repeat within a file), six random ones.
_ID_SPACE = 36**7
_ID_MULT = 2654435761  # odd and not a multiple of 3: coprime with 36**7


@dataclass
class Block:
    """The users of one block: tastes per user, and their purchases flattened in order."""

    user_ids: list[str]
    persona: np.ndarray  # index into PERSONAS
    lengths: np.ndarray
    items: np.ndarray  # [purchases], user by user
    moves: np.ndarray  # MOVES index, or FIRST
    changes: np.ndarray  # CHANGES index of a refinement, else -1
    ratings: np.ndarray
    times: np.ndarray  # unix seconds
    rng: np.random.Generator  # the block's stream, for the text drawn after the purchases


def block_rng(seed: int, block: int) -> np.random.Generator:
    """The numpy stream of one block (a function of the seed and the block index only)."""
    return np.random.default_rng(np.random.SeedSequence([DOMAIN, seed], spawn_key=(0, block)))


def cover(cat: Catalog, users: int, first: np.ndarray) -> np.ndarray:
    """The catalog item user ``first[k]`` introduces, or -1.

    Users ``g`` with ``(g + 1) * items // users > g * items // users`` (evenly spread, one
    per item) buy item ``cover[g * items // users]`` first, so every item is bought at least
    once without a pass over the whole population; it needs ``users >= items``.
    """
    lo = first * cat.size // users
    hi = (first + 1) * cat.size // users
    return np.where(hi > lo, cat.cover[np.minimum(lo, cat.size - 1)], -1)


def simulate(cat: Catalog, users: int, seed: int, start: int, stop: int, block: int) -> Block:
    """Users ``start..stop-1`` of ``users``, drawn from the stream of ``block``."""
    rng = block_rng(seed, block)
    g = np.arange(start, stop, dtype=np.int64)
    b = len(g)
    persona = draw(np.broadcast_to(_PERSONA_CUM, (b, len(_PERSONAS))), rng.random(b))
    intro = cover(cat, users, g)
    has = intro >= 0
    # Tastes: two branches by the persona's weights, and three favourite leaves, two of the
    # first branch; a user introducing an item has that item's branch and leaf first.
    branches = np.stack([draw(_PERSONA_BRANCH[persona], rng.random(b)) for _ in range(2)], 1)
    branches[has, 0] = cat.leaf_branch[cat.leaf[intro[has]]]
    tier = draw(_PERSONA_TIER[persona], rng.random(b))
    favourites = np.stack([_branch_leaf(cat, rng, branches[:, k]) for k in (0, 0, 1)], 1)
    favourites[has, 0] = cat.leaf[intro[has]]
    # Lengths: the inverse CDF of the geometric count truncated at MAX_LENGTH.
    span = MAX_LENGTH - MIN_LENGTH
    k = np.log1p(-rng.random(b) * (1 - LENGTH_DECAY ** (span + 1))) // np.log(LENGTH_DECAY)
    lengths = (MIN_LENGTH + np.minimum(k, span)).astype(np.int64)
    steps = _Steps(cat, rng, int(lengths.max()), b, tier, branches, favourites)
    steps.first(intro)
    for t in range(1, int(lengths.max())):
        steps.step(t, np.nonzero(lengths > t)[0])
    mask = np.arange(steps.hist.shape[1])[None, :] < lengths[:, None]
    items, moves, changes = steps.hist[mask], steps.move[mask], steps.change[mask]
    owner = np.repeat(np.arange(b), lengths)
    return Block(
        user_ids=_user_ids(rng, g, seed),
        persona=persona,
        lengths=lengths,
        items=items,
        moves=moves,
        changes=changes,
        ratings=_ratings(cat, rng, persona, tier, owner, items, moves),
        times=_times(rng, lengths, steps.move == MOVES.index("refine"), mask),
        rng=rng,
    )


def _branch_leaf(cat: Catalog, rng: np.random.Generator, branch: np.ndarray) -> np.ndarray:
    """A leaf of each branch, by leaf popularity."""
    return cat.branch_leaf[branch, draw(cat.branch_cum[branch], rng.random(len(branch)))]


#: What a move proposes per user: an item (-1: none) and, for a refinement, its change.
_Picks = tuple[np.ndarray, np.ndarray | None]


class _Steps:
    """The purchase matrices of a block being filled step by step."""

    def __init__(
        self,
        cat: Catalog,
        rng: np.random.Generator,
        width: int,
        b: int,
        tier: np.ndarray,
        branches: np.ndarray,
        favourites: np.ndarray,
    ):
        self.cat, self.rng = cat, rng
        self.tier, self.branches, self.favourites = tier, branches, favourites
        self.hist = np.full((b, width), -1, np.int64)
        self.move = np.full((b, width), -1, np.int8)
        self.change = np.full((b, width), -1, np.int8)

    def first(self, intro: np.ndarray) -> None:
        rows = np.arange(len(intro))
        popular = self.rng.random(len(rows)) < FIRST_POPULAR
        got = np.where(popular, self._popular(rows)[0], self._taste(rows)[0])
        self.hist[:, 0] = np.where(intro >= 0, intro, got)
        self.move[:, 0] = FIRST

    def step(self, t: int, rows: np.ndarray) -> None:
        """Purchase ``t`` of the users ``rows``: each move's users at once, falling through."""
        chosen = draw(
            np.broadcast_to(_MOVE_CUM, (len(rows), len(MOVES))), self.rng.random(len(rows))
        )
        left = rows[:0]
        proposers = (self._refine, self._complement, self._taste, self._popular, self._noise)
        for code, propose in enumerate(proposers):
            left = np.concatenate([rows[chosen == code], left])
            # Noise, the last resort, draws until allowed: a uniform item almost always is.
            tries = RETRIES if code < len(MOVES) - 1 else 1000
            for _ in range(tries):
                if not len(left):
                    break
                left = self._accept(t, left, code, *propose(left, t))
        if len(left):
            raise RuntimeError("no allowed purchase found")  # a catalog of one level-4 group

    def _accept(
        self, t: int, rows: np.ndarray, code: int, item: np.ndarray, change: np.ndarray | None
    ) -> np.ndarray:
        """Record the allowed picks (item -1: none); return the rows still without one."""
        ok = item >= 0
        safe = np.where(ok, item, 0)
        ok &= ~(self.hist[rows, :t] == safe[:, None]).any(1)
        if code != 0:  # only a refinement may stay in the previous item's level-4 group
            ok &= self.cat.group[safe] != self.cat.group[self.hist[rows, t - 1]]
        self.hist[rows[ok], t] = item[ok]
        self.move[rows[ok], t] = code
        if change is not None:
            self.change[rows[ok], t] = change[ok]
        return rows[~ok]

    def _refine(self, rows: np.ndarray, t: int) -> _Picks:
        """One of the previous item's refinements, uniformly, and the change it makes."""
        cat = self.cat
        prev = self.hist[rows, t - 1]
        lo = cat.refine_ptr[prev]
        count = cat.refine_ptr[prev + 1] - lo
        at = np.minimum(lo + (self.rng.random(len(rows)) * count).astype(np.int64), lo + count - 1)
        if not len(cat.refine_item):
            return np.full(len(rows), -1), None
        at = np.clip(at, 0, len(cat.refine_item) - 1)  # an item without refinements: any
        return np.where(count > 0, cat.refine_item[at], -1), cat.refine_change[at]

    def _complement(self, rows: np.ndarray, t: int) -> _Picks:
        cat = self.cat
        prev = self.hist[rows, t - 1]
        pl = cat.leaf[prev]
        leaf = cat.comp_leaf[pl, draw(cat.comp_cum[pl], self.rng.random(len(rows)))]
        loyal = self.rng.random(len(rows)) < TIER_LOYALTY
        got = self._in_leaf(leaf, np.where(loyal, cat.tier[prev], 3))
        return np.where(cat.comp_n[pl] > 0, got, -1), None

    def _taste(self, rows: np.ndarray, t: int = 0) -> _Picks:
        n = len(rows)
        fav = self.favourites[rows, (self.rng.random(n) * self.favourites.shape[1]).astype(int)]
        side = (self.rng.random(n) < 0.3).astype(int)  # the second branch, less often
        other = _branch_leaf(self.cat, self.rng, self.branches[rows, side])
        leaf = np.where(self.rng.random(n) < FAVOURITE_SHARE, fav, other)
        loyal = self.rng.random(n) < TIER_LOYALTY
        return self._in_leaf(leaf, np.where(loyal, self.tier[rows], 3)), None

    def _popular(self, rows: np.ndarray, t: int = 0) -> _Picks:
        cum = self.cat.pop_cum
        x = self.rng.random(len(rows)) * cum[-1]
        return np.minimum(np.searchsorted(cum, x, "right"), len(cum) - 1), None

    def _noise(self, rows: np.ndarray, t: int = 0) -> _Picks:
        return self.rng.integers(0, self.cat.size, len(rows)), None

    def _in_leaf(self, leaf: np.ndarray, tier: np.ndarray) -> np.ndarray:
        """An item of each leaf in the given tier (3: any; a tier without items: any), by
        sqrt(popularity)."""
        cat = self.cat
        lo, hi = cat.seg_lo[leaf, tier], cat.seg_hi[leaf, tier]
        empty = hi == lo
        lo = np.where(empty, cat.seg_lo[leaf, 3], lo)
        hi = np.where(empty, cat.seg_hi[leaf, 3], hi)
        base = np.where(lo > 0, cat.seg_cum[lo - 1], 0.0)
        x = base + self.rng.random(len(leaf)) * (cat.seg_cum[hi - 1] - base)
        pos = np.clip(np.searchsorted(cat.seg_cum, x, "right"), lo, hi - 1)
        return cat.seg_items[pos]


def _user_ids(rng: np.random.Generator, g: np.ndarray, seed: int) -> list[str]:
    """Amazon-style reviewer ids ("A" and 13 characters), distinct within a file."""
    code = (g * _ID_MULT + seed % _ID_SPACE * 7919) % _ID_SPACE
    digits = (code[:, None] // 36 ** np.arange(6, -1, -1)) % 36
    chars = np.concatenate(
        [
            np.full((len(g), 1), ord("A"), np.uint8),
            _ID_CHARS[digits],
            _ID_CHARS[rng.integers(0, 36, (len(g), 6))],
        ],
        1,
    )
    return np.ascontiguousarray(chars).view("S14").ravel().astype(str).tolist()


def _ratings(
    cat: Catalog,
    rng: np.random.Generator,
    persona: np.ndarray,
    tier: np.ndarray,
    owner: np.ndarray,
    items: np.ndarray,
    moves: np.ndarray,
) -> np.ndarray:
    """Star ratings: higher the better the item fits the user (Amazon-like skew, as mini)."""
    n = len(items)
    palette = _palette_codes(cat)[persona[owner]]
    liked = (palette == cat.colour[items][:, None]).any(1)
    gap = np.abs(cat.tier[items] - tier[owner])
    match = liked.astype(int) + (gap == 0) - 2 * (gap == 2)
    leniency = rng.normal(0.0, 0.35, len(tier))[owner]
    x = 4.41 + 0.3 * match + leniency + rng.normal(0.0, 0.75, n) + 0.2 * (moves == 0)
    stars = np.clip(np.round(x), 1, 5)
    # A few purchases simply go wrong (defects, wrong size): the 1-2 star tail of real data.
    wrong = rng.random(n) < 0.05 + 0.04 * (match <= 0)
    return np.where(wrong, 1 + (rng.random(n) < 0.4), stars).astype(np.int64)


def _palette_codes(cat: Catalog) -> np.ndarray:
    """Each persona's palette as colour codes (padded by repeating the last)."""
    width = max(len(p.palette) for p in _PERSONAS)
    return np.array(
        [
            [cat.colour_code[c] for c in p.palette]
            + [cat.colour_code[p.palette[-1]]] * (width - len(p.palette))
            for p in _PERSONAS
        ]
    )


def _times(
    rng: np.random.Generator, lengths: np.ndarray, refine: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Day-resolution unix times in 2014-2018, strictly increasing; refinements come fast."""
    b, width = mask.shape
    pace = np.asarray(rng.uniform(20.0, 120.0, b))[:, None]
    mean = np.where(refine, 4.0, pace)
    gaps = (1 + np.floor(rng.exponential(1.0, (b, width)) * mean)).astype(np.int64)
    gaps[:, 0] = 0
    gaps[~mask] = 0
    total = gaps.sum(1)
    room = (T1 - T0) // DAY
    over = total > room
    if over.any():
        squeezed = np.maximum(1, gaps * room // (total + lengths)[:, None])
        squeezed[:, 0] = 0
        squeezed[~mask] = 0
        gaps = np.where(over[:, None], squeezed, gaps)
        total = gaps.sum(1)
    day = (rng.random(b) * (room - total + 1)).astype(np.int64)
    return (T0 + (day[:, None] + np.cumsum(gaps, 1)) * DAY)[mask]
