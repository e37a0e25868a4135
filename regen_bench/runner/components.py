"""The components of a run, checked before it loads data or trains (:func:`preflight`).

A run needs its model plugin, and on a narrating task the narrator's LLM
backend (unless the model writes text itself), the BLEU/ROUGE libraries, the embedder of the
semantic-similarity metric and the BERTScore library. Each is checked without importing it
(:mod:`regen_bench.readiness`); what is missing is reported in one
:class:`~regen_bench.readiness.MissingExtraError` naming the extras to install, so a run never
trains for minutes and then stops on an import. The output folder is checked too, that the
BERTScore model's weights can be pinned (:mod:`regen_bench.weights`), and that a fine-tuned
narrator learnt the prompts of the run's task (with or without critiques).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from regen_bench.finetune_manifest import check_narrator_task
from regen_bench.llm import check_options
from regen_bench.narrator import NarratorConfig
from regen_bench.plugins import Entry, PluginManager
from regen_bench.readiness import DIST, Readiness, readiness, require
from regen_bench.runner.config import RunConfig, RunError
from regen_bench.tasks import TASKS

#: Core code behind the text metrics (read for its imports like a plugin's).
LEXICAL_METRICS = "regen_bench.metrics.lexical:lexical_metrics"
BERTSCORE = "regen_bench.metrics.text:bertscore_f1"


def _entry_readiness(entry: Entry, plugins: PluginManager) -> Readiness:
    info = next((p for p in plugins.infos if p.name == entry.plugin), None)
    return readiness(entry.factory, kind=entry.kind, dist=(info and info.distribution) or DIST)


def check_output(output: str | os.PathLike[str]) -> None:
    """The output folder is a folder this process can write in: made if missing (with the
    folders above it), then probed by creating and removing a file in it.

    Permission bits are not read (root ignores them, a read-only mount does not show in them):
    the probe asks the file system itself. Folders made here are removed again, so a run that
    stops before writing leaves nothing behind.
    """
    path = Path(output).expanduser()
    missing: list[Path] = []
    existing = path
    try:
        while not existing.exists() and existing.parent != existing:
            missing.append(existing)
            existing = existing.parent
    except OSError as exc:  # a folder above it that this user may not look into
        raise RunError(f"output folder {output}: cannot read {existing} ({_reason(exc)})") from None
    if not existing.is_dir():
        raise RunError(f"output folder {output}: {existing} exists and is not a folder")
    made: list[Path] = []
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except OSError as exc:
                raise RunError(
                    f"output folder {output}: cannot create {folder} ({_reason(exc)})"
                ) from None
            made.append(folder)
        try:
            fd, probe = tempfile.mkstemp(prefix=".regen-bench-probe.", dir=path)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise RunError(
                f"output folder {output}: cannot write a file in it ({_reason(exc)})"
            ) from None
    finally:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def preflight(config: RunConfig, plugins: PluginManager) -> None:
    """Check that every component of ``config``'s run can load and its output can be written
    (and the narrator's options, which need no data either).

    Raises :class:`~regen_bench.readiness.MissingExtraError` (what is missing, the install
    command) or :class:`RunError` (the output folder). Call it after
    :func:`~regen_bench.runner.check_config`, which checks the names.
    """
    entry = plugins.get("model", config.model)
    components = [(f"model '{config.model}'", _entry_readiness(entry, plugins))]
    if TASKS[config.task].generates:
        if not entry.generates_text:
            narrator_config = NarratorConfig.from_options(config.narrator_options())
            backend = narrator_config.backend
            narrator = plugins.get("llm_backend", backend)
            check_options(
                f"llm backend '{backend}'", narrator.factory, narrator_config.backend_options
            )
            components.append(
                (f"narrator backend '{backend}'", _entry_readiness(narrator, plugins))
            )
        components.append(("BLEU/ROUGE", readiness(LEXICAL_METRICS)))
        if config.embedder is not None:
            embedder = plugins.get("embedder", config.embedder)
            components.append(
                (f"embedder '{config.embedder}'", _entry_readiness(embedder, plugins))
            )
        if config.bertscore_model is not None:
            components.append(("BERTScore", readiness(BERTSCORE)))
    require(components)
    if TASKS[config.task].generates and not entry.generates_text:
        _check_narrator_task(config)
        _check_narrator_pins(config, plugins)
    if TASKS[config.task].generates and config.bertscore_model is not None:
        _check_bertscore_pin(config.bertscore_model)
    check_output(config.output)


def _check_narrator_task(config: RunConfig) -> None:
    """A fine-tuned narrator was trained on prompts of the run's kind: a narrator that learnt
    critiques never narrates a task without them, nor the reverse."""
    try:
        check_narrator_task(NarratorConfig.from_options(config.narrator_options()), config.task)
    except ValueError as exc:  # (its manifest is invalid, or another task's)
        raise RunError(str(exc)) from None


def _check_narrator_pins(config: RunConfig, plugins: PluginManager) -> None:
    """The narrator backend's weights can be pinned, where its factory can tell without
    loading them (an optional ``check_weights(options)``, raising ``WeightsError``)."""
    from regen_bench.weights import WeightsError

    narrator_config = NarratorConfig.from_options(config.narrator_options())
    factory = plugins.get("llm_backend", narrator_config.backend).factory
    check = getattr(factory, "check_weights", None)
    if callable(check):
        try:
            check(narrator_config.backend_options)
        except WeightsError as exc:
            raise RunError(f"narrator: cannot pin its weights: {exc}") from None


def _check_bertscore_pin(model: str) -> None:
    """The BERTScore model's weights can be pinned (a hub id is in the cache, or the hub can
    be asked): otherwise the run would train for nothing and fail when it scores.

    The other weights are pinned where their plugin resolves them: the model's right after it
    is built, before training (its options only mean something to it; a hub id that is not in
    the cache offline already fails to load there, in one line naming the option); the
    narrator's when its backend has loaded, before any request, after the backend's own
    ``check_weights`` ran here; the embedder's when it scores.
    """
    from regen_bench.metrics.text import bertscore_weights
    from regen_bench.weights import WeightsError

    try:
        bertscore_weights(model)
    except WeightsError as exc:
        raise RunError(f"--bertscore-model: cannot pin its weights: {exc}") from None


__all__ = ["BERTSCORE", "LEXICAL_METRICS", "check_output", "preflight"]
