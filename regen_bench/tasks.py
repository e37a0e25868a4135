"""The four fixed tasks and how their examples are built (leave-one-out split).

The paper's row labels: ``sequential`` Hist. -> ID, ``critique`` Hist. + Critique -> ID,
``narrative`` Hist. -> ID + Narrative, ``conversational`` Hist. + Critique -> ID + Narrative.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar, overload

import numpy as np

from regen_bench.data.dataset import Catalog, Dataset, UserList, UserSequence
from regen_bench.data.schema import NARRATIVE_TYPES


@dataclass(frozen=True, kw_only=True)
class Task:
    """A fixed task definition. ``version`` changes whenever examples or inputs change."""

    name: str
    version: int
    #: The critique leading to each purchase is visible (history and target).
    uses_critique: bool
    #: A narrative of a given type is written besides the ranking.
    generates: bool
    description: str


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            name="sequential",
            version=1,
            uses_critique=False,
            generates=False,
            description="history -> next item",
        ),
        Task(
            name="critique",
            version=1,
            uses_critique=True,
            generates=False,
            description="history + the critique leading to the target -> next item",
        ),
        Task(
            name="narrative",
            version=1,
            uses_critique=False,
            generates=True,
            description="history -> next item and a narrative of a given type (no critique)",
        ),
        Task(
            name="conversational",
            version=1,
            uses_critique=True,
            generates=True,
            description="history + critique -> next item and a narrative of a given type",
        ),
    )
}

#: Split protocol shared by all tasks (recorded in results and signatures).
SPLIT = "leave-one-out"
#: A user needs one training item, one validation target and one test target.
MIN_INTERACTIONS = 3


@dataclass(frozen=True)
class Example:
    """One prediction to make: the history, what the task reveals, and the held-out truth."""

    user_id: str
    history: np.ndarray  # catalog indices, oldest first
    #: history_critiques[i] led to history[i]; all None unless the task uses critiques.
    history_critiques: tuple[str | None, ...]
    target: int
    #: The critique leading from history[-1] to the target (critique tasks; may be None).
    critique: str | None
    #: Reference narratives of the user by type (narrating tasks only, else empty).
    references: dict[str, str | None]


T = TypeVar("T")


class Rows(Sequence[T], Generic[T]):
    """A read-only sequence built on access from rows of ``users`` (lazy, O(1) memory).

    A task's training sequences and examples are views of the dataset, not copies: on a
    Clothing-size file (1.17M users) the lists of objects took ~9 KB a user, more than the
    data. Each access builds a fresh object (callers may modify it); a slice is a view too.
    """

    def __init__(
        self, users: Sequence[UserSequence], rows: np.ndarray, make: Callable[[UserSequence], T]
    ):
        self.users, self.rows, self._make = users, rows, make

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> Rows[T]: ...
    def __getitem__(self, i: int | slice) -> T | Rows[T]:
        if isinstance(i, slice):
            return Rows(self.users, self.rows[i], self._make)
        return self._make(self.users[int(self.rows[i])])

    def __iter__(self) -> Iterator[T]:
        users, make = self.users, self._make
        for r in self.rows:
            yield make(users[int(r)])

    def __add__(self, other: Sequence[T]) -> list[T]:
        return [*self, *other]

    def __radd__(self, other: Sequence[T]) -> list[T]:
        return [*other, *self]

    def __repr__(self) -> str:
        return f"<{len(self)} rows of {len(self.users)} users>"


@dataclass
class TaskData:
    """What a model sees: training sequences (first N-2 purchases), validation and test.

    ``build_task`` makes them :class:`Rows` views of the dataset; any sequence works (tests
    and tools pass lists).
    """

    task: Task
    catalog: Catalog
    train: Sequence[UserSequence]
    valid: Sequence[Example]
    test: Sequence[Example]
    narrative_type: str | None = None
    skipped_users: int = 0


def target_critiqued(dataset: Dataset, examples: Sequence[Example]) -> list[bool]:
    """Whether a critique led to each example's target, whether or not the task shows it.

    For :class:`Rows` views of a store-backed dataset this reads the critique null mask of
    the users' last purchases (no user is built); otherwise it looks the users up by id.
    """
    store_of_rows = getattr(examples.users, "store", None) if isinstance(examples, Rows) else None
    if isinstance(examples, Rows) and store_of_rows is not None and store_of_rows is dataset.store:
        store = dataset.store
        rows = np.asarray(examples.rows, dtype=np.int64)
        last = np.asarray(store.user_offsets)[rows + 1] - 1
        null = np.asarray(store.text["critique"].null, dtype=bool)
        return (~null[last]).tolist()
    wanted = {ex.user_id for ex in examples}
    by_user = {u.user_id: u.critiques[-1] is not None for u in dataset.users if u.user_id in wanted}
    return [by_user[ex.user_id] for ex in examples]


def _example(user: UserSequence, n: int, task: Task) -> Example:
    """Predict purchase ``n`` (0-based) from purchases ``0..n-1``."""
    crit = user.critiques if task.uses_critique else (None,) * len(user)
    return Example(
        user_id=user.user_id,
        history=user.items[:n],
        history_critiques=tuple(crit[:n]),
        target=int(user.items[n]),
        critique=crit[n],
        references=user.narratives.as_dict() if task.generates else {},
    )


def build_task(dataset: Dataset, task_name: str, narrative_type: str | None = None) -> TaskData:
    """Leave-one-out: train on the first N-2 purchases, validate on N-1, test on N.

    Users with fewer than :data:`MIN_INTERACTIONS` purchases cannot be split and are skipped
    (counted in ``skipped_users``). Without critiques (``sequential``, ``narrative``) the
    critique text is removed from the training sequences as well, so no model can read it.
    """
    task = TASKS[task_name]
    if task.generates:
        if narrative_type not in NARRATIVE_TYPES:
            raise ValueError(
                f"task '{task_name}' needs a narrative type, one of {', '.join(NARRATIVE_TYPES)}"
            )
    elif narrative_type is not None:
        raise ValueError(f"task '{task_name}' takes no narrative type")
    users = dataset.users
    rows = np.flatnonzero(dataset.lengths() >= MIN_INTERACTIONS)
    # Examples carry no reviews (and narratives only when the task writes them).
    lean = users.without_text(narratives=task.generates) if isinstance(users, UserList) else users
    return TaskData(
        task=task,
        catalog=dataset.catalog,
        train=Rows(users, rows, partial(_train_head, task)),
        valid=Rows(lean, rows, partial(_example_from_end, task, 2)),
        test=Rows(lean, rows, partial(_example_from_end, task, 1)),
        narrative_type=narrative_type,
        skipped_users=len(users) - len(rows),
    )


def _train_head(task: Task, user: UserSequence) -> UserSequence:
    """The first N-2 purchases (critiques removed when the task hides them)."""
    head = user.head(len(user) - 2)
    if not task.uses_critique:
        head.critiques = (None,) * len(head)
    return head


def _example_from_end(task: Task, back: int, user: UserSequence) -> Example:
    return _example(user, len(user) - back, task)
