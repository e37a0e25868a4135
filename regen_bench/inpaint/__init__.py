"""Inpainting critiques and narratives into REGEN-format data with an LLM backend (paper 3.2).

See :mod:`regen_bench.inpaint.pipeline` for the steps and ``docs/inpainting.md`` for the
command (``regen-bench inpaint``), the files it writes and how it resumes.
"""

from regen_bench.inpaint.pipeline import (
    Call,
    InpaintConfig,
    InpaintReport,
    apply_answers,
    choose,
    inpaint,
    plan_calls,
    run_calls,
    shared_levels,
)
from regen_bench.inpaint.prompts import PROMPT_VERSION

__all__ = [
    "PROMPT_VERSION",
    "Call",
    "InpaintConfig",
    "InpaintReport",
    "apply_answers",
    "choose",
    "inpaint",
    "plan_calls",
    "run_calls",
    "shared_levels",
]
