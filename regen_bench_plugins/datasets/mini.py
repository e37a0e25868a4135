"""``mini``: the embedded default dataset, a simulated office-supplies store (see data synth)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from regen_bench import Register, hookimpl


def mini_path(data_dir: str | None = None) -> Path:
    """Path of the REGEN-format file shipped inside the package (``data_dir`` is not used)."""
    ref = resources.files("regen_bench.data").joinpath("mini/mini.jsonl.gz")
    return Path(str(ref))


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        "mini",
        mini_path,
        summary="embedded simulated office-supplies store (2,000 users, 800 items)",
    )
