"""Resolving a dataset argument: a registered dataset name or the path of a REGEN-format file."""

from __future__ import annotations

import os

from regen_bench.data.dataset import Dataset, directory_message
from regen_bench.plugins import PluginManager, UnknownNameError, get_plugin_manager

#: The dataset a command uses when none is named: the embedded simulated store.
DEFAULT_DATASET = "mini"


def resolve_dataset(
    name_or_path: str, data_dir: str | None = None, plugins: PluginManager | None = None
) -> Dataset:
    """Load a registered dataset by name, or a REGEN-format file by path.

    ``data_dir`` tells a dataset plugin where to look for its files. A path that does not exist
    raises FileNotFoundError, a folder IsADirectoryError; any other unknown name an
    :class:`UnknownNameError` listing the registered datasets.
    """
    plugins = plugins or get_plugin_manager()
    if name_or_path in plugins.entries["dataset"]:
        path = plugins.get("dataset", name_or_path).factory(data_dir=data_dir)
        return Dataset.from_file(path, name=name_or_path)
    if os.path.sep in name_or_path or os.path.exists(name_or_path):
        if os.path.isdir(name_or_path):
            raise IsADirectoryError(directory_message(name_or_path))
        if not os.path.isfile(name_or_path):
            raise FileNotFoundError(f"dataset file '{name_or_path}' does not exist")
        return Dataset.from_file(name_or_path)
    raise UnknownNameError("dataset", name_or_path, plugins.names("dataset"))


__all__ = ["DEFAULT_DATASET", "resolve_dataset"]
