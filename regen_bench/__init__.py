"""regen-bench: the reference harness for the REGEN conversational recommendation benchmark."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from regen_bench.data import Catalog, Dataset, Item, UserSequence
    from regen_bench.hookspecs import Register, hookimpl
    from regen_bench.model import Model
    from regen_bench.options import ModelOptions, parse_options
    from regen_bench.plugins import lazy
    from regen_bench.tasks import TASKS, Example, TaskData, build_task

#: Every public name is imported on first use: numpy, pydantic and pluggy cost ~0.3 s that
#: ``regen-bench --help`` (which imports this package first) and light scripts should not pay.
_DEFERRED = {
    "Catalog": "regen_bench.data",
    "Dataset": "regen_bench.data",
    "Item": "regen_bench.data",
    "UserSequence": "regen_bench.data",
    "Register": "regen_bench.hookspecs",
    "hookimpl": "regen_bench.hookspecs",
    "Model": "regen_bench.model",
    "ModelOptions": "regen_bench.options",
    "parse_options": "regen_bench.options",
    "lazy": "regen_bench.plugins",
    "TASKS": "regen_bench.tasks",
    "Example": "regen_bench.tasks",
    "TaskData": "regen_bench.tasks",
    "build_task": "regen_bench.tasks",
}


def __getattr__(name: str) -> object:
    if name in _DEFERRED:
        import importlib

        value = getattr(importlib.import_module(_DEFERRED[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'regen_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_DEFERRED})


__version__ = "0.1.0"

__all__ = [
    "TASKS",
    "Catalog",
    "Dataset",
    "Example",
    "Item",
    "Model",
    "ModelOptions",
    "Register",
    "TaskData",
    "UserSequence",
    "__version__",
    "build_task",
    "hookimpl",
    "lazy",
    "parse_options",
]
