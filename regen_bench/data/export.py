"""Export a dataset as a Hugging Face ``datasets`` folder (``regen-bench data export``).

The folder is a DatasetDict with ``train``/``validation``/``test`` splits, one row per
example of the leave-one-out split of :mod:`regen_bench.tasks` (train: the last purchase of the
training prefix, predicted from the purchases before it; validation: purchase N-1; test:
purchase N), plus the catalog as a sibling Dataset in ``OUT/items`` (a separate dataset,
not a split, because its columns differ), and a README dataset card. Load with
``datasets.load_from_disk(OUT)`` and ``datasets.load_from_disk(OUT / "items")``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from regen_bench.data.dataset import Dataset
from regen_bench.data.schema import NARRATIVE_TYPES
from regen_bench.tasks import MIN_INTERACTIONS, SPLIT

#: Which purchase (counted from the end) each split predicts.
SPLITS = {"train": 3, "validation": 2, "test": 1}


def _features() -> Any:
    from datasets import Features, Sequence, Value

    example = Features(
        {
            "user_id": Value("string"),
            "history": Sequence(Value("string")),
            "history_critiques": Sequence(Value("string")),
            "target": Value("string"),
            "critique": Value("string"),
            **{name: Value("string") for name in NARRATIVE_TYPES},
        }
    )
    items = Features(
        {
            "asin": Value("string"),
            "title": Value("string"),
            "categories": Sequence(Value("string")),
            "description": Value("string"),
            "price": Value("float64"),
            "brand": Value("string"),
        }
    )
    return example, items


def iter_split(ds: Dataset, split: str) -> Iterator[dict[str, Any]]:
    """Rows of one split: users with fewer than MIN_INTERACTIONS purchases are skipped."""
    back = SPLITS[split]
    for user in ds.users:
        n = len(user)
        if n < MIN_INTERACTIONS:
            continue
        t = n - back
        yield {
            "user_id": user.user_id,
            "history": ds.catalog.ids(user.items[:t]),
            "history_critiques": list(user.critiques[:t]),
            "target": ds.catalog.asin(int(user.items[t])),
            "critique": user.critiques[t],
            **user.narratives.as_dict(),
        }


def iter_items(ds: Dataset) -> Iterator[dict[str, Any]]:
    for item in ds.catalog:
        yield {
            "asin": item.asin,
            "title": item.title,
            "categories": list(item.categories),
            "description": item.description,
            "price": item.price,
            "brand": item.brand,
        }


def _card(ds: Dataset, counts: dict[str, int]) -> str:
    rows = "\n".join(f"| {k} | {v:,} |" for k, v in counts.items())
    return f"""---
pretty_name: REGEN {ds.name}
task_categories:
- text-generation
tags:
- recommendation
- conversational-recommendation
---

# REGEN `{ds.name}` ({SPLIT} split)

Exported by `regen-bench data export --format hf` from `{Path(ds.source).name or ds.name}`
(content fingerprint `sha256:{ds.fingerprint}`).

Each row predicts one purchase of one user from the purchases before it (`history`, catalog
asins oldest first), the critiques that led to each of them (`history_critiques`, null where
none) and the critique leading to the `target` (`critique`). `train` predicts the last
purchase of the training prefix (purchase N-2), `validation` purchase N-1 and `test` purchase
N, as in regen-bench's leave-one-out split; users with fewer than {MIN_INTERACTIONS}
purchases are left out. The user's reference narratives ({", ".join(NARRATIVE_TYPES)}) are on
every row. The catalog is the separate dataset in `items/`.

| split | rows |
|---|---|
{rows}

```python
from datasets import load_from_disk
splits = load_from_disk("OUT")          # train / validation / test
items = load_from_disk("OUT/items")     # the catalog
# to publish: splits.push_to_hub(repo); items.push_to_hub(repo, config_name="items")
```
"""


def _to_arrow(rows: Iterator[dict[str, Any]], features: Any, path: Path, batch: int = 4096) -> Any:
    import pyarrow as pa
    from datasets import Dataset as HFDataset

    schema = features.arrow_schema
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == batch:
                writer.write_batch(pa.RecordBatch.from_pylist(chunk, schema=schema))
                chunk = []
        if chunk:
            writer.write_batch(pa.RecordBatch.from_pylist(chunk, schema=schema))
    return HFDataset.from_file(str(path))


def export_hf(
    ds: Dataset, out: str | os.PathLike[str], *, progress: bool = False
) -> dict[str, int]:
    """Write ``ds`` as a ``datasets`` folder at ``out`` (all or nothing); return row counts."""
    try:
        from datasets import DatasetDict, disable_progress_bars
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ValueError("export needs the data extra: pip install 'regen-bench[data]'") from exc
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"output '{out}' exists and is not empty")
    if not progress:
        disable_progress_bars()
    example_features, item_features = _features()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        # Rows go through an Arrow stream file in batches (bounded memory); from_generator
        # would hash its arguments, i.e. pickle the whole memory-mapped dataset.
        splits = DatasetDict(
            {
                split: _to_arrow(iter_split(ds, split), example_features, tmp / f"{split}.arrow")
                for split in SPLITS
            }
        )
        items = _to_arrow(iter_items(ds), item_features, tmp / "items.arrow")
        final = tmp / "final"
        splits.save_to_disk(str(final))
        items.save_to_disk(str(final / "items"))
        counts = {**{k: len(v) for k, v in splits.items()}, "items": len(items)}
        (final / "README.md").write_text(_card(ds, counts))
        if out.exists():
            out.rmdir()
        os.replace(final, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return counts
