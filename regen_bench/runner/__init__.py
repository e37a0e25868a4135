"""run(config) -> result files: the one place that wires data, model, metrics and narrator.

A run is a :class:`RunConfig` (every setting that can change a number) and five named steps,
each in :mod:`~regen_bench.runner.steps`: :func:`prepare` (checks; :func:`preflight`: every
component can load; data, narrator), :func:`fit`, :func:`evaluate` (full-catalog ranking,
:mod:`~regen_bench.runner.scoring`),
:func:`narrate` (narrating tasks, :mod:`~regen_bench.runner.narration`) and
:func:`build_result`. :func:`run` calls them in order and writes the result and per-sample files::

    from regen_bench.runner import RunConfig, run

    out = run(RunConfig("popularity", "sequential", seed=0))
    print(out.result.metrics["ndcg@10"], out.result_path)
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from regen_bench.resolve import DEFAULT_DATASET
    from regen_bench.runner.components import check_output, preflight
    from regen_bench.runner.config import (
        DEFAULT_EVAL_BATCH_SIZE,
        DEFAULT_OUTPUT,
        NARRATOR_PREFIX,
        RunConfig,
        RunError,
        check_config,
        check_names,
        supports,
    )
    from regen_bench.runner.scoring import TOP_K, score_examples
    from regen_bench.runner.steps import (
        Evaluated,
        Fitted,
        Narrated,
        Prepared,
        RunOutput,
        build_model,
        build_result,
        evaluate,
        fit,
        narrate,
        prepare,
        run,
    )

#: Names imported on first use, so that ``regen_bench.runner.defaults`` (what ``run --help``
#: shows) imports without the run's numpy and pydantic modules.
_DEFERRED = {
    "DEFAULT_DATASET": "regen_bench.resolve",
    **dict.fromkeys(
        (
            "DEFAULT_EVAL_BATCH_SIZE",
            "DEFAULT_OUTPUT",
            "NARRATOR_PREFIX",
            "RunConfig",
            "RunError",
            "check_config",
            "check_names",
            "supports",
        ),
        "regen_bench.runner.config",
    ),
    "check_output": "regen_bench.runner.components",
    "preflight": "regen_bench.runner.components",
    "TOP_K": "regen_bench.runner.scoring",
    "score_examples": "regen_bench.runner.scoring",
    **dict.fromkeys(
        (
            "Evaluated",
            "Fitted",
            "Narrated",
            "Prepared",
            "RunOutput",
            "build_model",
            "build_result",
            "evaluate",
            "fit",
            "narrate",
            "prepare",
            "run",
        ),
        "regen_bench.runner.steps",
    ),
}


def __getattr__(name: str) -> object:
    if name in _DEFERRED:
        import importlib

        value = getattr(importlib.import_module(_DEFERRED[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'regen_bench.runner' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_DEFERRED})


__all__ = [
    "DEFAULT_DATASET",
    "DEFAULT_EVAL_BATCH_SIZE",
    "DEFAULT_OUTPUT",
    "NARRATOR_PREFIX",
    "TOP_K",
    "Evaluated",
    "Fitted",
    "Narrated",
    "Prepared",
    "RunConfig",
    "RunError",
    "RunOutput",
    "build_model",
    "build_result",
    "check_config",
    "check_names",
    "check_output",
    "evaluate",
    "fit",
    "narrate",
    "preflight",
    "prepare",
    "run",
    "score_examples",
    "supports",
]
