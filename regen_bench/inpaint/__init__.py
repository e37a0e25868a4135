"""Inpainting critiques and narratives into REGEN-format data with an LLM backend (paper 3.2).

See :mod:`regen_bench.inpaint.pipeline` for the steps (their modules: ``plan``, ``pipeline``,
``answers``; ``merge`` joins the outputs of ``--shard`` runs) and ``docs/inpainting.md`` for
the command (``regen-bench inpaint``), the files it writes and how it resumes.
"""

from regen_bench.inpaint.answers import apply_answers, choose
from regen_bench.inpaint.pipeline import InpaintReport, inpaint, run_calls
from regen_bench.inpaint.plan import Call, InpaintConfig, plan_calls, shared_levels
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
