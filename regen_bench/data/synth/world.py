"""The simulated world: the catalog and every user's purchases, before any text is written."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from regen_bench.data.schema import UserRecord
from regen_bench.data.synth.catalog import ItemSpec, build_catalog
from regen_bench.data.synth.rng import Rng
from regen_bench.data.synth.shoppers import (
    DEFAULT_HABITS,
    Habits,
    SynthUser,
    make_user,
    next_purchase,
)
from regen_bench.data.synth.store import Store
from regen_bench.data.synth.vocabulary import LEAVES

DEFAULT_USERS = 5000
DEFAULT_ITEMS = 2000
DEFAULT_SEED = 0
#: Mean number of purchases beyond the minimum of five (lengths over 20 are redrawn).
EXTRA_LENGTH = 5.0


@dataclass
class World:
    """Everything :func:`synthesize_world` builds: catalog specs, users and their records."""

    specs: list[ItemSpec]
    users: list[SynthUser]
    records: list[UserRecord]

    def spec_by_asin(self) -> dict[str, ItemSpec]:
        return {s.asin: s for s in self.specs}


def simulate(
    users: int = DEFAULT_USERS,
    items: int = DEFAULT_ITEMS,
    seed: int = DEFAULT_SEED,
    habits: Habits = DEFAULT_HABITS,
) -> tuple[list[ItemSpec], list[SynthUser]]:
    """The catalog and every user's purchases, without text (a pure function of the args).

    ``habits`` says how shoppers choose each next purchase (:data:`DEFAULT_HABITS`, the
    calibrated shoppers of the packaged ``mini``; ``LEGACY`` rebuilds the ``mini`` of 0.x).

    Users are small here (indices and tastes, no text), so a Clothing-scale world fits in
    memory; the text records are made one at a time by :func:`iter_synthetic`.
    """
    if users < 1 or items < 2 * len(LEAVES):
        raise ValueError(f"need users >= 1 and items >= {2 * len(LEAVES)}")
    specs = build_catalog(items, seed)
    store = Store(specs, Rng(f"regen-mini/{seed}/popularity"))
    rng = Rng(f"regen-mini/{seed}/users")
    taken: set[str] = set()
    people: list[SynthUser] = []
    for _ in range(users):
        user_id = _user_id(rng)
        while user_id in taken:
            user_id = _user_id(rng)
        taken.add(user_id)
        u = make_user(rng, store, user_id)
        n = 21
        while n > 20:  # a smooth tail, without a pile-up at the maximum
            n = 5 + int(rng.expo(EXTRA_LENGTH))
        seen: set[int] = set()
        for _ in range(n):
            i, move, change = next_purchase(rng, store, u, seen, habits)
            seen.add(i)
            u.items.append(i)
            u.moves.append(move if u.items[:-1] else "first")
            u.changes.append(change)
        people.append(u)
    del taken
    _cover_cold_items(store, people)
    return specs, people


def _user_id(rng: Rng) -> str:
    """An Amazon-style reviewer id ("A" and 13 characters)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "A" + "".join(alphabet[rng.below(36)] for _ in range(13))


def _cover_cold_items(store: Store, people: list[SynthUser]) -> None:
    """Give every item nobody bought one buyer, so the catalog is the one that was built.

    The item replaces a taste-driven or popular pick (never a refinement or complement, and
    never next to an item of its own level-4 group) whose item was bought by others too, so
    every story in the sequence stays true. Each cold item takes the first such slot in user
    order.

    A slot that fails the move rule or whose item has a single buyer left can never qualify
    again (counts only fall), so such slots are skipped for good with a "next live slot"
    union-find; only the level-4 neighbour rule is checked per cold item. This finds the same
    slots as scanning every user from the start for every cold item, which is quadratic and
    takes days at Clothing scale.
    """
    counts = Counter(i for u in people for i in u.items)
    cold_items = [c for c in range(len(store.specs)) if not counts[c]]
    if not cold_items:
        return
    lengths = np.fromiter((len(u.items) for u in people), np.int64, len(people))
    owner = np.repeat(np.arange(len(people), dtype=np.int64), lengths)
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    total = int(lengths.sum())
    # nxt[p]: p itself while slot p may still qualify, else a later slot (path-compressed).
    nxt = np.arange(total + 1, dtype=np.int64)

    def live(p: int) -> int:
        root = p
        while nxt[root] != root:
            root = int(nxt[root])
        while nxt[p] != root:
            nxt[p], p = root, int(nxt[p])
        return root

    specs = store.specs
    # An earlier purchase that a recall or revisit builds on keeps its item too.
    anchored = {(n, k) for n, u in enumerate(people) for k in (u.anchors or ()) if k is not None}
    for p in range(total):
        u = people[int(owner[p])]
        k = p - int(first[owner[p]])
        after = u.moves[k + 1] if k + 1 < len(u.items) else None
        if (
            u.moves[k] not in ("first", "taste", "popular", "noise")
            or after in ("refine", "complement")
            or (int(owner[p]), k) in anchored
        ):
            nxt[p] = p + 1
    exhausted: set[tuple[str, ...]] = set()
    for cold in cold_items:
        group = specs[cold].group
        if group in exhausted:
            # No slot was left for this group: more cold items than buyers (a catalog far
            # larger than its users); rescanning for every such item would be quadratic.
            continue
        p = live(0)
        while p < total:
            u = people[int(owner[p])]
            k = p - int(first[owner[p]])
            i = u.items[k]
            if counts[i] <= 1:
                nxt[p] = p + 1
            elif cold not in u.items and all(
                specs[u.items[j]].group != group for j in (k - 1, k + 1) if 0 <= j < len(u.items)
            ):
                counts[i] -= 1
                counts[cold] += 1
                u.items[k] = cold
                nxt[p] = p + 1  # now holds an item with a single buyer
                break
            p = live(p + 1)
        else:
            exhausted.add(group)
