"""regen-bench: the reference harness for the REGEN conversational recommendation benchmark."""

from typing import TYPE_CHECKING

from regen_bench.data import Catalog, Dataset, Item, UserSequence
from regen_bench.hookspecs import Register, hookimpl
from regen_bench.model import Model
from regen_bench.tasks import TASKS, Example, TaskData, build_task

if TYPE_CHECKING:
    from regen_bench.options import ModelOptions, parse_options
    from regen_bench.plugins import lazy

#: Names imported on first use: pydantic and the plugin manager cost ~60 ms that `--help`
#: and scripts which never touch options or plugins should not pay.
_DEFERRED = {
    "ModelOptions": "regen_bench.options",
    "parse_options": "regen_bench.options",
    "lazy": "regen_bench.plugins",
}


def __getattr__(name: str) -> object:
    if name in _DEFERRED:
        import importlib

        return getattr(importlib.import_module(_DEFERRED[name]), name)
    raise AttributeError(f"module 'regen_bench' has no attribute {name!r}")


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
