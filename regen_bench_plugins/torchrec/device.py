"""The torch device of a model option (``"auto"``: CUDA when available, else the CPU)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def resolve_device(model: str, value: str) -> torch.device:
    """``value`` as a torch device; ValueError naming ``model``'s option when it is unusable."""
    import torch

    if value == "auto":
        value = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(value)
    except RuntimeError as exc:
        raise ValueError(f"{model} option 'device': {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{model} option 'device': CUDA is not available on this machine")
    return device
