"""regen-bench: the reference harness for the REGEN conversational recommendation benchmark."""

from regen_bench.data import Catalog, Dataset, Item, UserSequence
from regen_bench.hookspecs import Register, hookimpl
from regen_bench.model import Model
from regen_bench.options import ModelOptions, parse_options
from regen_bench.plugins import lazy
from regen_bench.tasks import TASKS, Example, TaskData, build_task

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
