"""``regen-bench reproduce``: the paper's grid, as data, expanded into cells and run.

A **grid** (:class:`GridSpec`, one per dataset in :data:`GRIDS`) names models and narrative
types; it is expanded against the task registry (:data:`regen_bench.tasks.TASKS`) and what each
registered model declares it supports, so a new task joins the grid without a change here:

- every *ranking model* on every task that writes no narrative and that it supports;
- on every task that writes a narrative, for each narrative type: every *narrated model*
  paired with a narrator fine-tuned for that task and type (the paper's hybrid, e.g. FLARE +
  LLM; ``narrator finetune --task TASK``, so a narrator that learnt critiques never narrates a
  task without them), and every *text model* writing the narrative itself (e.g. LUMEN).

Each :class:`Cell` is one command of the real command line (``python -m regen_bench run ...``
or ``narrator finetune ...``), so every result records exactly the command that made it. A
hybrid cell depends on its narrator cell. :func:`run_cells` runs the cells in that order, up to
``jobs`` at a time as subprocesses, skips every cell whose output is already there and valid
(a result that :func:`regen_bench.results.load_result` accepts and that was made with the
cell's settings; a narrator folder whose manifest matches), so a killed grid resumes where it
stopped, and reports what ran, what was skipped and what failed. A failed cell does not stop
the others; the cells that depend on it are reported as blocked.

**Shards** (:func:`shard`): the run cells, grouped by the narrator they need (a cell that
needs none is a group alone), are dealt round-robin over ``n`` shards by sorted group name; a
shard holds the narrator cells of its groups. Every narrator is thus fine-tuned in exactly one
shard, and no shard waits for another.

The core names no plugin module; model names appear here only as data.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from regen_bench.data.schema import PAPER_NARRATIVES
from regen_bench.narrator import NarratorConfig

#: Under ``OUT/<dataset>/``: fine-tuned narrators (``_narrators/<task>/<narrative>``) and the
#: log of every cell. Their names cannot be task names (a task name starts with a letter), so
#: they never mix with result folders.
NARRATOR_DIR = "_narrators"
#: Where the run cells keep and reuse trained ranking models (``run --fit-cache``), so the
#: narrating cells of a ranking model train once per ranking twin, not once per narrative type.
FITS_DIR = "_fits"
LOG_DIR = "_logs"
#: What the cells' ``--set`` values may name: the narrative type of the cell.
NARRATIVE_FIELD = "{narrative}"
DEFAULT_THREADS = 1
DEFAULT_JOBS = 1
#: How a cell done by its result in the submissions folder is described.
PUBLISHED = "already published: "
#: How a result made with other settings than the grid's is described (it is run again).
STALE = "stale result, run again: "
STALE_PUBLISHED = "the published result is stale, run again: "
#: The states of a cell with nothing left to do: its output is here, or (a run cell) its
#: result is already in the submissions folder.
DONE = ("done", "published")


@dataclass(frozen=True)
class NarratorSpec:
    """How a grid fine-tunes its narrators (``regen-bench narrator finetune`` options)."""

    base_model: str
    #: Further options of ``narrator finetune``, as on its command line (not the held-out
    #: share, which is the field below).
    args: tuple[str, ...] = ()
    #: The share of users held out of fine-tuning (``--heldout-fraction``); None: the
    #: command's default. A narrator folder made with another share is not this grid's.
    heldout_fraction: float | None = None


@dataclass(frozen=True)
class GridSpec:
    """The models and narrative types of one dataset's grid (the tasks come from the registry).

    ``options`` are each model's ``--set`` options (``{narrative}`` in a value becomes the
    cell's narrative type), ``narrative_options`` those of one model and narrative type over
    them; ``narrator`` says how the hybrid's narrator is fine-tuned.
    """

    ranking_models: tuple[str, ...]
    narrated_models: tuple[str, ...]
    text_models: tuple[str, ...]
    narratives: tuple[str, ...]
    narrator: NarratorSpec
    options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    narrative_options: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    summary: str = ""
    #: Protocol options every run cell takes (e.g. ``--exclude-history``), as on its command
    #: line; they are recorded in each result's signature.
    run_args: tuple[str, ...] = ()


#: The share of `mini`'s users held out of all text training (the narrator's fine-tuning and
#: LUMEN's text loss, one hashed partition): their narratives are the only ones written and
#: scored. 10% is ~500 of 5,000 users, which keeps each narrating cell under an hour on CPU
#: (writing a narrative takes seconds there) while both text columns use the same users.
MINI_HELDOUT = 0.1

GRIDS: dict[str, GridSpec] = {
    # CPU-affordable: the narrator is SmolLM2-135M fine-tuned on a subset of the training users
    # (docs/models.md: about 23 minutes each on 2 cores), LUMEN on its CPU preset.
    "mini": GridSpec(
        ranking_models=("popularity", "markov", "itemknn", "sasrec", "bert4rec", "flare"),
        narrated_models=("flare",),
        text_models=("lumen",),
        narratives=PAPER_NARRATIVES,
        narrator=NarratorSpec(
            base_model="smollm2",
            args=tuple(
                shlex.split(
                    "--max-history 2 --max-field-chars 40 --max-length 448 --limit-users 112 "
                    "--limit-valid 16 --batch-size 2 --epochs 1 --eval-every 14 "
                    "--eval-batch-size 4 --lr 1e-4 --warmup-steps 4"
                )
            ),
            heldout_fraction=MINI_HELDOUT,
        ),
        # LUMEN's CPU preset stops on a 30-minute clock, so how far it trains depends on the
        # machine's load; a published cell stops at a fixed step count instead (the steps the
        # preset reached in its half hour on an idle 2-core machine), so its command
        # reproduces its numbers.
        options={
            "lumen": {
                "preset": "cpu-hour",
                "narrative": NARRATIVE_FIELD,
                "train_minutes": "0",
                "max_steps": "120",
                "text_heldout_fraction": str(MINI_HELDOUT),
            }
        },
        # The preset trains on and writes 32 tokens at most: it holds every `purchase_reason`
        # and 99% of the `user_summary` references of `mini` (SmolLM2 tokens: mean 15 and 26,
        # largest 24 and 35), but none of the three long types' (mean 73, 78 and 102). There
        # LUMEN gets the narrator's budget (`narrator.max_tokens`, 96), so both text columns
        # write up to the same length; a 32-token LUMEN text would be scored as cut short.
        narrative_options={
            "lumen": {
                narrative: dict.fromkeys(
                    ("max_target_tokens", "max_new_tokens"), str(NarratorConfig.max_tokens)
                )
                for narrative in (
                    "product_endorsement",
                    "purchase_explanation",
                    "user_summary_long",
                )
            }
        },
        summary="the paper's Table 4 layout at CPU-affordable settings",
        # Nobody buys an item twice in the simulated store (nor reviews one twice in REGEN):
        # ranking an earlier purchase is never right, so every model is scored without them.
        run_args=("--exclude-history",),
    ),
}
#: The grid of a dataset that has none of its own.
DEFAULT_GRID = "mini"


def grid_for(dataset_name: str) -> tuple[str, GridSpec]:
    """The grid of ``dataset_name`` (its own, else :data:`DEFAULT_GRID`) and its name."""
    name = dataset_name if dataset_name in GRIDS else DEFAULT_GRID
    return name, GRIDS[name]


# -- cells --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One command of the grid: a run (``output`` is its result file) or a narrator
    fine-tuning (``output`` is its folder)."""

    id: str
    kind: Literal["run", "narrator"]
    #: The arguments after ``python -m regen_bench``.
    args: tuple[str, ...]
    output: Path
    depends_on: tuple[str, ...] = ()
    model: str = ""
    task: str = ""
    narrative: str | None = None
    #: The model's ``--set`` options (checked against a result found in place).
    options: Mapping[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "regen_bench", *self.args]

    def command_line(self) -> str:
        return shlex.join(self.command())


@dataclass(frozen=True)
class Settings:
    """What every cell of one ``reproduce`` shares."""

    dataset: str  # as given: registered name or path
    dataset_name: str  # the name results are filed under
    fingerprint: str
    out: Path
    data_dir: str | None = None
    seed: int = 0
    threads: int = DEFAULT_THREADS
    limit: int | None = None
    #: The submissions folder: a cell whose valid result is already published there (made
    #: with the cell's settings, in ``<dataset>/<task>/``) is done, on any machine.
    published: Path | None = None

    def published_result(self, cell: Cell) -> Path | None:
        """Where ``cell``'s result would be in the submissions folder (None: no folder)."""
        if self.published is None or cell.kind != "run":
            return None
        return self.published / self.dataset_name / cell.task / cell.output.name


def split_names(text: str | None) -> list[str] | None:
    """``a,b , c`` -> ``["a", "b", "c"]``; None stays None (no filter)."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("an empty list of names")
    return list(dict.fromkeys(names))


def _common_args(s: Settings) -> list[str]:
    args = ["--dataset", s.dataset]
    if s.data_dir is not None:
        args += ["--data-dir", s.data_dir]
    return args


def _narrator_cell(s: Settings, grid: GridSpec, task: str, narrative: str) -> Cell:
    """The fine-tuning of the narrator of ``task``'s hybrid cells of type ``narrative``: on
    that task's prompts (critiques shown or not as the task does)."""
    out = s.out / s.dataset_name / NARRATOR_DIR / task / narrative
    args = (
        "narrator",
        "finetune",
        *_common_args(s),
        "--task",
        task,
        "--narrative",
        narrative,
        "--model",
        grid.narrator.base_model,
        "--out",
        str(out),
        "--seed",
        str(s.seed),
        "--threads",
        str(s.threads),
        "-q",
        *grid.narrator.args,
        *(
            ("--heldout-fraction", str(grid.narrator.heldout_fraction))
            if grid.narrator.heldout_fraction is not None
            else ()
        ),
    )
    return Cell(
        f"narrator/{task}/{narrative}", "narrator", args, out, task=task, narrative=narrative
    )


def _run_cell(
    s: Settings,
    grid: GridSpec,
    model: str,
    task: str,
    narrative: str | None = None,
    narrator: Cell | None = None,
) -> Cell:
    stem = model + (f"__{narrative}" if narrative else "")
    out = s.out / s.dataset_name / task / f"{stem}.json"
    own = grid.narrative_options.get(model, {}).get(narrative or "", {})
    options = {
        key: value.replace(NARRATIVE_FIELD, narrative or "")
        for key, value in {**grid.options.get(model, {}), **own}.items()
    }
    args = ["run", "--model", model, "--task", task]
    if narrative is not None:
        args += ["--narrative", narrative]
    args += [*_common_args(s), "--out", str(s.out), "--seed", str(s.seed)]
    args += ["--threads", str(s.threads), *grid.run_args]
    args += ["--fit-cache", str(s.out / s.dataset_name / FITS_DIR)]
    if s.limit is not None:
        args += ["--limit", str(s.limit)]
    args.append("-q")
    for key, value in options.items():
        args += ["--set", f"{key}={value}"]
    if narrator is not None:
        args += ["--set", "narrator.backend=hf", "--set", f"narrator.model={narrator.output}"]
    return Cell(
        f"{task}/{stem}",
        "run",
        tuple(args),
        out,
        depends_on=(narrator.id,) if narrator else (),
        model=model,
        task=task,
        narrative=narrative,
        options=options,
    )


@dataclass(frozen=True)
class GridModel:
    """What the grid needs to know of a model: its registered metadata, None if unregistered."""

    meta: Mapping[str, object] | None

    def runs(self, task: str, supports: Callable[[Mapping[str, object], str], bool]) -> bool:
        # An unregistered model gets its cells anyway: they fail with the run's own one-line
        # error (unknown model, did you mean...) while the rest of the grid goes on.
        return self.meta is None or supports(self.meta, task)


def expand(
    s: Settings,
    grid: GridSpec,
    models: Mapping[str, GridModel],
    tasks: Mapping[str, bool],
    supports: Callable[[Mapping[str, object], str], bool],
    *,
    only_models: Sequence[str] | None = None,
    narratives: Sequence[str] | None = None,
) -> list[Cell]:
    """Every cell of ``grid``, narrators first, then runs in task and model order.

    ``models`` maps each model name to its metadata (None: not registered here); ``tasks`` maps
    each task name, in registry order, to whether it writes a narrative. ``only_models``
    restricts the grid to those models (a model outside the grid joins it: as a ranking model,
    and as a text model where it writes narratives itself); ``narratives`` restricts the types.
    """
    chosen = list(only_models) if only_models is not None else None

    def pick(names: Sequence[str]) -> list[str]:
        return [m for m in names if chosen is None or m in chosen]

    in_grid = {*grid.ranking_models, *grid.narrated_models, *grid.text_models}
    extra = [m for m in chosen or () if m not in in_grid]
    ranking = pick(grid.ranking_models) + extra
    narrated = pick(grid.narrated_models)
    text = pick(grid.text_models) + [
        m for m in extra if (models[m].meta or {}).get("generates_text", False)
    ]
    types = list(narratives) if narratives is not None else list(grid.narratives)

    narrators: dict[tuple[str, str], Cell] = {}
    runs: list[Cell] = []
    for task, generates in tasks.items():
        if not generates:
            runs += [_run_cell(s, grid, m, task) for m in ranking if models[m].runs(task, supports)]
            continue
        for narrative in types:
            for m in narrated:
                if models[m].meta is not None and models[m].runs(task, supports):
                    key = (task, narrative)
                    if key not in narrators:
                        narrators[key] = _narrator_cell(s, grid, task, narrative)
                    runs.append(_run_cell(s, grid, m, task, narrative, narrators[key]))
            runs += [
                _run_cell(s, grid, m, task, narrative)
                for m in text
                if models[m].meta is not None and models[m].runs(task, supports)
            ]
    cells = [*narrators.values(), *runs]
    ids = [c.id for c in cells]
    assert len(ids) == len(set(ids)), "cell ids must be unique"
    return cells


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``1 <= i <= n``; ValueError naming the problem.

    The same spelling and message as ``inpaint``/``rate --shard`` (:class:`Shard`).
    """
    from regen_bench.shards import Shard  # not at import time: it loads the data reader

    parsed = Shard.parse(text)
    return parsed.index, parsed.count


def shard(cells: Sequence[Cell], index: int, count: int) -> list[Cell]:
    """Shard ``index`` of ``count`` (1-based), in the grid's order.

    The run cells are grouped by what they depend on (the hybrid cells of one narrator form
    one group; a cell depending on nothing is a group alone); the groups, sorted by name (the
    dependency's id, or the cell's), are dealt round-robin, group ``index - 1``, ``index - 1 +
    count``, ... to this shard, with the cells they depend on. So every narrator is fine-tuned
    in exactly one shard, the one that needs it, and no shard waits for another.
    """
    groups: dict[str, set[str]] = {}
    for c in cells:
        if c.kind == "run":
            groups.setdefault(", ".join(c.depends_on) or c.id, set()).add(c.id)
    mine: set[str] = set()
    for key in sorted(groups)[index - 1 :: count]:
        mine |= groups[key]
    by_id = {c.id: c for c in cells}
    needed: set[str] = set()
    todo = list(mine)
    while todo:
        for dep in by_id[todo.pop()].depends_on:
            if dep not in needed:
                needed.add(dep)
                todo.append(dep)
    return [c for c in cells if c.id in mine or c.id in needed]


# -- what is already done -------------------------------------------------------------------


def _same_value(recorded: object, given: str) -> bool:
    """Whether a recorded option equals a ``--set`` value (parsed as ``--set`` parses it)."""
    try:
        value: object = json.loads(given)
    except json.JSONDecodeError:
        value = given
    return bool(recorded == value)


def _narrator_state(cell: Cell, s: Settings, narrator: NarratorSpec) -> tuple[str, str]:
    from regen_bench.finetune_manifest import UserPartition, read_manifest

    base_model = narrator.base_model
    heldout_fraction = (
        UserPartition.heldout_fraction
        if narrator.heldout_fraction is None
        else narrator.heldout_fraction
    )

    if not cell.output.exists():
        return "todo", "not fine-tuned yet"
    try:
        manifest = read_manifest(cell.output)
    except ValueError as exc:
        return "conflict", str(exc)
    if manifest is None:
        return "conflict", f"{cell.output} exists but holds no fine-tuned narrator"
    wanted = {
        "narrative type": (manifest.narrative_type, cell.narrative),
        "task": (manifest.task, cell.task),
        "dataset fingerprint": (manifest.dataset.get("fingerprint"), s.fingerprint),
        "base model": (manifest.base_model, base_model),
        "seed": (manifest.seed, s.seed),
        "held-out fraction": (manifest.partition.heldout_fraction, heldout_fraction),
    }
    for what, (found, expected) in wanted.items():
        if found != expected:
            return (
                "conflict",
                f"{cell.output} was fine-tuned with {what} {found!r}, not {expected!r}",
            )
    return "done", f"valid narrator {cell.output}"


def _result_state(
    path: Path, cell: Cell, s: Settings, by_id: Mapping[str, Cell], *, local: bool
) -> tuple[str, str]:
    """Whether ``path`` holds a valid result made with ``cell``'s settings. ``local``: the
    cell's own output, made with the narrator now in ``_narrators/`` (a published result
    carries the record of the narrator that made it, fine-tuned wherever the cell ran)."""
    from regen_bench.finetune_manifest import manifest_sha256
    from regen_bench.results import ResultError, load_result

    if not path.exists():
        return "todo", "no result yet"
    try:
        r = load_result(path)
    except ResultError as exc:
        return "todo", f"invalid result, run again: {exc}"
    config = r.model.config
    mismatches = [
        f"{what} {found!r} (the grid asks {expected!r})"
        for what, found, expected in (
            ("model", r.model.name, cell.model),
            ("task", r.task.name, cell.task),
            ("narrative", r.task.narrative_type, cell.narrative),
            ("dataset fingerprint", r.dataset.fingerprint[:12], s.fingerprint[:12]),
            ("limit", r.protocol.limit, s.limit),
            ("seed", r.seeds.get("seed"), s.seed),
        )
        if found != expected
    ]
    mismatches += [
        f"option {key}={config[key]!r} (the grid asks {value!r})"
        for key, value in cell.options.items()
        if key in config and not _same_value(config[key], value)
    ]
    for dep in cell.depends_on:
        narrator = by_id[dep]
        ft = r.narration.finetune if r.narration is not None else None
        if ft is None:
            mismatches.append("no fine-tuned narrator")
        elif (
            local
            and narrator.output.exists()
            and ft.manifest_sha256 != manifest_sha256(narrator.output)
        ):
            mismatches.append(f"another fine-tuned narrator than {narrator.output}")
    if mismatches:
        return "todo", STALE + "; ".join(mismatches)
    return "done", f"valid result {path}"


def _run_state(cell: Cell, s: Settings, by_id: Mapping[str, Cell]) -> tuple[str, str]:
    status, why = _result_state(cell.output, cell, s, by_id, local=True)
    published = s.published_result(cell)
    if status == "done" or published is None or not published.exists():
        return status, why
    found, found_why = _result_state(published, cell, s, by_id, local=False)
    if found == "done":
        return "published", f"{PUBLISHED}{published}"
    if status == "todo" and not cell.output.exists():
        return status, f"{STALE_PUBLISHED}{published}: {found_why.removeprefix(STALE)}"
    return status, why


def _narrator_needed(cell: Cell, s: Settings, by_id: Mapping[str, Cell]) -> bool:
    """Whether some run cell of the plan that uses narrator ``cell`` is still to run."""
    users = [c for c in by_id.values() if cell.id in c.depends_on]
    return not users or any(_run_state(c, s, by_id)[0] not in DONE for c in users)


def state(cell: Cell, s: Settings, grid: GridSpec, by_id: Mapping[str, Cell]) -> tuple[str, str]:
    """``("done" | "published" | "todo" | "conflict", why)``: whether ``cell``'s output is
    already there and made with the cell's settings (done), or its valid result is already in
    the submissions folder (published), missing or invalid or stale (todo: run it), or
    a narrator folder in the way that is not this cell's (conflict: it fails, naming it)."""
    if cell.kind == "narrator":
        status, why = _narrator_state(cell, s, grid.narrator)
        if status == "todo" and not _narrator_needed(cell, s, by_id):
            return "done", "not needed: every cell that uses it is done"
        return status, why
    return _run_state(cell, s, by_id)


# -- running ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    cell: Cell
    status: Literal["ran", "skipped", "failed", "blocked"]
    detail: str = ""
    elapsed_s: float = 0.0
    #: Skipped because its result is already in the submissions folder (nothing to submit).
    published: bool = False


@dataclass
class _Running:
    cell: Cell
    index: int
    process: subprocess.Popen[bytes]
    log_path: Path
    started: float


def log_path(cell: Cell, s: Settings) -> Path:
    return s.out / s.dataset_name / LOG_DIR / f"{cell.id}.log"


def _last_error(path: Path) -> str:
    """The last line of a cell's log that says what went wrong (else its last line)."""
    try:
        lines = [x.strip() for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    errors = [x for x in lines if x.startswith("regen-bench:")]
    return (errors or lines or [""])[-1]


def run_cells(
    cells: Sequence[Cell],
    s: Settings,
    grid: GridSpec,
    *,
    jobs: int = DEFAULT_JOBS,
    say: Callable[[str], None] = print,
    poll_s: float = 0.1,
) -> list[Outcome]:
    """Run ``cells`` in order, up to ``jobs`` at a time, each once its dependencies are done;
    skip those already done. One outcome per cell, in the order of ``cells``."""
    by_id = {c.id: c for c in cells}
    total = len(cells)
    outcomes: dict[str, Outcome] = {}
    pending = list(enumerate(cells, start=1))
    running: list[_Running] = []

    def finish(out: Outcome, index: int) -> None:
        outcomes[out.cell.id] = out
        elapsed = f" in {out.elapsed_s:.1f}s" if out.status in ("ran", "failed") else ""
        label = {"ran": "done", "skipped": "skip", "failed": "FAILED", "blocked": "BLOCKED"}
        say(f"[{index}/{total}] {label[out.status]} {out.cell.id}{elapsed}: {out.detail}")

    def start(index: int, cell: Cell) -> None:
        path = log_path(cell, s)
        path.parent.mkdir(parents=True, exist_ok=True)
        say(f"[{index}/{total}] start {cell.id} (log {path})")
        with path.open("wb") as log:
            log.write(f"$ {cell.command_line()}\n".encode())
            log.flush()
            process = subprocess.Popen(
                cell.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        running.append(_Running(cell, index, process, path, time.monotonic()))

    def reap(job: _Running) -> None:
        code = job.process.returncode
        elapsed = time.monotonic() - job.started
        if code != 0:
            why = _last_error(job.log_path)
            detail = f"exit status {code}" + (f": {why}" if why else "") + f" (log {job.log_path})"
            finish(Outcome(job.cell, "failed", detail, elapsed), job.index)
            return
        status, why = state(job.cell, s, grid, by_id)
        if status != "done":  # exited 0 without leaving what it should have: a bug somewhere
            finish(Outcome(job.cell, "failed", f"exit status 0 but {why}", elapsed), job.index)
            return
        finish(Outcome(job.cell, "ran", why, elapsed), job.index)

    try:
        while pending or running:
            for job in [j for j in running if j.process.poll() is not None]:
                running.remove(job)
                reap(job)
            for index, cell in list(pending):
                if len(running) >= jobs:
                    break  # no free slot: skips wait too, so progress stays in order
                missing = [d for d in cell.depends_on if d not in by_id]
                broken = missing + [
                    d
                    for d in cell.depends_on
                    if d in outcomes and outcomes[d].status in ("failed", "blocked")
                ]
                if broken:
                    pending.remove((index, cell))
                    finish(Outcome(cell, "blocked", f"needs {', '.join(broken)}"), index)
                    continue
                if any(d not in outcomes for d in cell.depends_on):
                    continue  # a dependency is still to run (or running)
                pending.remove((index, cell))
                status, why = state(cell, s, grid, by_id)
                if status in DONE:
                    finish(Outcome(cell, "skipped", why, published=status == "published"), index)
                elif status == "conflict":
                    finish(Outcome(cell, "failed", f"{why}; remove it to fine-tune again"), index)
                else:
                    if why not in ("no result yet", "not fine-tuned yet"):
                        say(f"[{index}/{total}] {cell.id}: {why}")
                    start(index, cell)
            if running:
                time.sleep(poll_s)
    finally:
        # Interrupted (Ctrl-C): stop the cells still running. What they wrote is atomic, so a
        # half-done cell leaves nothing that the next invocation would take as done.
        for job in running:
            if job.process.poll() is None:
                job.process.terminate()
        for job in running:
            try:
                job.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                job.process.kill()
                job.process.wait()
    return [outcomes[c.id] for c in cells]


def summary(outcomes: Sequence[Outcome]) -> list[str]:
    """The closing lines: counts, then the cells of each kind of outcome."""
    kinds = ("ran", "skipped", "failed", "blocked")
    counts = {k: sum(o.status == k for o in outcomes) for k in kinds}
    lines = [
        f"summary: {len(outcomes)} cells: {counts['ran']} ran, {counts['skipped']} skipped "
        f"(already done), {counts['failed']} failed, {counts['blocked']} blocked"
    ]
    for kind in kinds:
        for o in outcomes:
            if o.status == kind:
                took = f" ({o.elapsed_s:.1f}s)" if kind in ("ran", "failed") else ""
                note = f": {o.detail}" if kind in ("failed", "blocked") else ""
                lines.append(f"  {kind:<7} {o.cell.id}{took}{note}")
    return lines


def describe(cells: Sequence[Cell], s: Settings, grid: GridSpec) -> list[str]:
    """The dry run: each cell in run order, its dependencies, whether it is done, its command."""
    by_id = {c.id: c for c in cells}
    lines = []
    for i, cell in enumerate(cells, start=1):
        status, why = state(cell, s, grid, by_id)
        after = f"  after: {', '.join(cell.depends_on)}" if cell.depends_on else ""
        done = "  (done: would be skipped)" if status in DONE else ""
        lines.append(f"[{i}/{len(cells)}] {cell.id}{after}{done}")
        if why.startswith(STALE_PUBLISHED):
            # Say why a published cell runs again (e.g. the grid's options changed).
            lines.append(f"    ({why})")
        lines.append(f"    {cell.command_line()}")
    return lines


# -- the whole command ----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    settings: Settings
    grid_name: str
    grid: GridSpec
    #: The whole grid (after the filters) and this shard's part of it, in run order.
    grid_cells: list[Cell]
    cells: list[Cell]
    warnings: list[str]


def plan(
    dataset: str,
    *,
    out: str | os.PathLike[str],
    data_dir: str | None = None,
    seed: int = 0,
    threads: int = DEFAULT_THREADS,
    limit: int | None = None,
    models: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    narratives: Sequence[str] | None = None,
    shard_of: tuple[int, int] = (1, 1),
    published: str | os.PathLike[str] | None = None,
) -> Plan:
    """Resolve the dataset, pick its grid, expand it against the registered models and tasks,
    apply the filters and take the shard; ``published`` is the submissions folder whose
    results count as done. Unknown task or narrative names raise
    :class:`~regen_bench.plugins.UnknownNameError`; an unregistered model is a warning (its
    cells will fail, the others run)."""
    from regen_bench.data.schema import NARRATIVE_TYPES
    from regen_bench.plugins import UnknownNameError, get_plugin_manager
    from regen_bench.resolve import resolve_dataset
    from regen_bench.runner.config import supports
    from regen_bench.tasks import TASKS

    if threads < 1:
        raise ValueError("--threads must be at least 1")
    if limit is not None and limit < 1:
        raise ValueError("--limit must be at least 1")
    for name in tasks or ():
        if name not in TASKS:
            raise UnknownNameError("task", name, list(TASKS))
    for name in narratives or ():
        if name not in NARRATIVE_TYPES:
            raise UnknownNameError("narrative type", name, list(NARRATIVE_TYPES))
    plugins = get_plugin_manager()
    ds = resolve_dataset(dataset, data_dir, plugins)
    grid_name, grid = grid_for(ds.name)
    settings = Settings(
        dataset=dataset,
        dataset_name=ds.name,
        fingerprint=ds.fingerprint,
        out=Path(out),
        data_dir=data_dir,
        seed=seed,
        threads=threads,
        limit=limit,
        published=Path(published) if published is not None else None,
    )
    registered = plugins.entries["model"]
    names = [*grid.ranking_models, *grid.narrated_models, *grid.text_models, *(models or ())]
    infos = {
        n: GridModel(registered[n].meta if n in registered else None) for n in dict.fromkeys(names)
    }
    warnings = [
        f"warning: {UnknownNameError('model', n, plugins.names('model'))}; its cells will fail"
        for n in models or ()
        if infos[n].meta is None
    ]
    chosen_tasks = {
        name: task.generates for name, task in TASKS.items() if tasks is None or name in tasks
    }
    grid_cells = expand(
        settings,
        grid,
        infos,
        chosen_tasks,
        supports,
        only_models=models,
        narratives=narratives,
    )
    return Plan(settings, grid_name, grid, grid_cells, shard(grid_cells, *shard_of), warnings)


def _prefixed(say: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda message: say(prefix + message)


def submit_and_build(
    outcomes: Sequence[Outcome],
    s: Settings,
    submissions: str | os.PathLike[str],
    leaderboards: str | os.PathLike[str],
    *,
    say: Callable[[str], None] = print,
) -> list[str]:
    """Submit (replacing) the result of every run cell that ran or was skipped, then build
    the leaderboards; the problems, one line each (nothing is built when a submission fails)."""
    from regen_bench.leaderboard import SubmissionError, build, submit

    problems = []
    submitted = 0
    for o in outcomes:
        if o.cell.kind != "run" or o.status not in ("ran", "skipped"):
            continue
        if o.published:
            continue  # its result is the submission itself (what OUT holds may be stale)
        try:
            submit(
                o.cell.output,
                submissions,
                replace=True,
                log=_prefixed(say, f"submit {o.cell.id}: "),
                dataset=s.dataset,
                data_dir=s.data_dir,
            )
        except SubmissionError as exc:
            problems.append(f"submit {o.cell.id}: {exc}")
        else:
            submitted += 1
    say(f"submitted {submitted} result(s) to {submissions}")
    if problems:
        return problems
    try:
        written = build(submissions, leaderboards)
    except SubmissionError as exc:
        return [f"leaderboard build: {exc}"]
    for path in written:
        say(f"wrote {path}")
    return []


__all__ = [
    "DEFAULT_GRID",
    "GRIDS",
    "PAPER_NARRATIVES",
    "Cell",
    "GridModel",
    "GridSpec",
    "NarratorSpec",
    "Outcome",
    "Plan",
    "Settings",
    "describe",
    "expand",
    "grid_for",
    "parse_shard",
    "plan",
    "run_cells",
    "shard",
    "split_names",
    "state",
    "submit_and_build",
    "summary",
]
