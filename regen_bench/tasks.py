"""The four fixed tasks and how their examples are built (leave-one-out split).

The paper's row labels: ``sequential`` Hist. -> ID, ``critique`` Hist. + Critique -> ID,
``narrative`` Hist. -> ID + Narrative, ``conversational`` Hist. + Critique -> ID + Narrative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regen_bench.data.dataset import Catalog, Dataset, UserSequence
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


@dataclass
class TaskData:
    """What a model sees: training sequences (first N-2 purchases), validation and test."""

    task: Task
    catalog: Catalog
    train: list[UserSequence]
    valid: list[Example]
    test: list[Example]
    narrative_type: str | None = None
    skipped_users: int = 0


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
    train, valid, test = [], [], []
    skipped = 0
    for user in dataset.users:
        n = len(user)
        if n < MIN_INTERACTIONS:
            skipped += 1
            continue
        head = user.head(n - 2)
        if not task.uses_critique:
            head.critiques = (None,) * len(head)
        train.append(head)
        valid.append(_example(user, n - 2, task))
        test.append(_example(user, n - 1, task))
    return TaskData(
        task=task,
        catalog=dataset.catalog,
        train=train,
        valid=valid,
        test=test,
        narrative_type=narrative_type,
        skipped_users=skipped,
    )
