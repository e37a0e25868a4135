"""``regen-bench trace``: one user's conversational trace from a saved model (paper Figure 6).

A checkpoint folder names its model plugin in ``regen-bench-model.json`` (``{"model": NAME}``);
the plugin is found through the plugin manager and built with ``checkpoint=PATH``. The trace
shows the user's history with the critiques, the critique leading to the held-out purchase, the
model's recommended items and, for a generating model, its narrative.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from regen_bench.plugins import get_plugin_manager
from regen_bench.resolve import DEFAULT_DATASET, resolve_dataset
from regen_bench.tasks import build_task

MODEL_MARKER = "regen-bench-model.json"
#: Recommended items a trace shows.
DEFAULT_TOP_K = 5


def _model_name(path: Path) -> str:
    marker = path / MODEL_MARKER
    if not marker.is_file():
        raise FileNotFoundError(f"{path}: not a saved model folder (no {MODEL_MARKER})")
    try:
        name = json.loads(marker.read_text()).get("model")
    except (json.JSONDecodeError, AttributeError):
        name = None
    if not isinstance(name, str) or not name:
        raise ValueError(f"{marker}: line 1: field 'model' must name a model plugin")
    return name


def trace(
    checkpoint: str,
    user_id: str,
    dataset: str = DEFAULT_DATASET,
    *,
    narrative: str | None = None,
    data_dir: str | None = None,
    top_k: int = DEFAULT_TOP_K,
    max_new_tokens: int | None = None,
) -> str:
    """The trace of ``user_id``'s test example (history -> critique -> item -> narrative)."""
    path = Path(checkpoint)
    name = _model_name(path)
    plugins = get_plugin_manager()
    entry = plugins.get("model", name)
    ds = resolve_dataset(dataset, data_dir, plugins)
    options: dict[str, Any] = {"checkpoint": str(path)}
    if max_new_tokens is not None:
        options["max_new_tokens"] = max_new_tokens
    model = entry.factory(ds.catalog, **options)
    generates = bool(entry.meta.get("generates_text", False))  # registered metadata
    narrative = narrative or model.config().get("narrative") if generates else None
    if narrative == "none":
        narrative = None
    data = build_task(ds, "conversational" if narrative else "critique", narrative)
    example = next((ex for ex in data.test if ex.user_id == user_id), None)
    if example is None:
        raise ValueError(f"user '{user_id}' is not a test user of dataset '{ds.name}'")
    user = next(u for u in ds.users if u.user_id == user_id)
    if hasattr(model, "use_users"):
        model.use_users([user])  # the prompt shows the history's ratings and reviews
    scores = np.asarray(model.score([example]))[0]
    order = np.argsort(-scores, kind="stable")[:top_k]
    cat = ds.catalog
    lines = [f"user {user_id} ({ds.name}), model {name} from {path}", "", "History:"]
    for pos, item in enumerate(example.history):
        crit = example.history_critiques[pos]
        if crit:
            lines.append(f"  critique: {crit}")
        lines.append(f"  {pos + 1}. {cat[int(item)].title}")
    lines += ["", f"Critique: {example.critique or '(none)'}", "", "Recommended:"]
    for rank, idx in enumerate(order):
        mark = "  <- purchased next" if int(idx) == example.target else ""
        lines.append(f"  {rank + 1}. {cat[int(idx)].title} [{cat[int(idx)].asin}]{mark}")
    target_rank = int((scores > scores[example.target]).sum())
    lines.append(f"  (actual next purchase: {cat[example.target].title}, rank {target_rank + 1})")
    if narrative:
        text = model.generate([example], narrative)[0]
        lines += ["", f"Generated {narrative}:", f"  {text}"]
        ref = example.references.get(narrative)
        if ref:
            lines += ["", f"Reference {narrative}:", f"  {ref}"]
    return "\n".join(lines)
