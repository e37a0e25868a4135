"""LUMEN's options: the typed schema, the ``preset`` bundles, and how a checkpoint's saved
options merge with the given ones. No torch here: the hook registers the schema as metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import Field

from regen_bench.finetune_manifest import DEFAULT_SALT, UserPartition
from regen_bench.options import ModelOptions

Narrative = Literal[
    "none",
    "purchase_reason",
    "purchase_explanation",
    "product_endorsement",
    "user_summary",
    "user_summary_long",
    "user_profile",
]


class LumenOptions(ModelOptions):
    """Every LUMEN option (docs/models.md explains them; the defaults are the paper's full
    fine-tuning, the CPU budgets are off)."""

    preset: Literal["", "cpu-hour"] = Field(
        default="", description="named bundle of options (explicit options override it)"
    )
    backbone: str = Field(
        default="smollm2", description="causal LM: offline alias, local folder, .gguf or hub id"
    )
    narrative: Narrative = Field(
        default="product_endorsement", description="narrative type trained and written"
    )
    max_history: int = Field(default=10, ge=1, description="newest purchases shown")
    max_field_chars: int = Field(default=200, ge=1, description="characters kept per field")
    fields: Literal["full", "title"] = Field(
        default="full", description="the paper's item block, or titles and critiques only"
    )
    max_title_words: int = Field(default=0, ge=0, description="words kept per title (0: all)")
    max_target_tokens: int = Field(default=96, ge=1, description="narrative target tokens")
    max_new_tokens: int = Field(default=96, ge=0, description="generated tokens at most")
    max_prefixes: int = Field(
        default=0, ge=0, description="longest prefixes per training user (0: all)"
    )
    max_train_users: int = Field(default=0, ge=0, description="training users used (0: all)")
    train_layers: int = Field(
        default=-1, ge=-1, description="top decoder layers that train (-1: all, 0: none)"
    )
    train_item_emb: bool = Field(default=True, description="train the input item table")
    item_loss: Literal["last", "all"] = Field(
        default="last", description="item loss at the target slot, or at every item slot"
    )
    item_head: Literal["separate", "tied"] = Field(
        default="separate",
        description="item scores from a separate linear head, or through the item table (paper)",
    )
    item_init: Literal["random", "title"] = Field(
        default="random",
        description="item table init: random, or the mean token embedding of the item's title",
    )
    decode: Literal["forced", "start_switch"] = Field(
        default="forced",
        description="force ' ID:' before the item step, or switch to items at the START marker",
    )
    start_max_tokens: int = Field(
        default=8,
        ge=0,
        description="start_switch: text tokens before the START marker is forced",
    )
    bucket: bool = Field(default=False, description="batch examples of similar length")
    frozen_cache_gb: float = Field(
        default=4.0,
        ge=0,
        description=(
            "GiB for the frozen layers' outputs: with train_layers=n and fixed inputs, later "
            "epochs run only the top n layers (0: off)"
        ),
    )
    train_minutes: float = Field(
        default=0.0, ge=0, description="training wall-time budget (0: none)"
    )
    lr: float = Field(default=1e-5, gt=0, description="backbone learning rate")
    item_lr: float = Field(default=1e-3, gt=0, description="item table and head learning rate")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay")
    batch_size: int = Field(default=16, ge=1, description="rows per optimizer step")
    micro_batch: int = Field(default=4, ge=1, description="rows per forward pass")
    epochs: int = Field(default=3, ge=0, description="training epochs at most")
    max_steps: int = Field(default=10000, ge=1, description="optimizer steps at most")
    eval_every: int = Field(
        default=0, ge=0, description="validate every N steps (0: after every epoch)"
    )
    valid_examples: int = Field(default=256, ge=1, description="validation examples used")
    patience: int = Field(default=2, ge=0, description="evaluations without gain before stop")
    text_weight: float = Field(default=1.0, ge=0, description="weight of the narrative loss")
    text_salt: str = Field(
        default=DEFAULT_SALT,
        min_length=1,
        description="salt of the user partition: only users outside 'heldout' train the text",
    )
    text_heldout_fraction: float = Field(
        default=0.5,
        gt=0,
        lt=0.95,
        description="share of users held out of the text loss (its text metrics use only them)",
    )
    grad_clip: float = Field(default=1.0, ge=0, description="gradient norm clip (0: none)")
    device: str = Field(default="auto", description="torch device; auto = cuda when available")
    save_dir: str = Field(default="", description="write a checkpoint folder after training")
    checkpoint: str = Field(default="", description="load a checkpoint folder, do not train")

    @pydantic.model_validator(mode="after")
    def _micro_batch_divides(self) -> LumenOptions:
        if self.batch_size % self.micro_batch:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of micro_batch "
                f"({self.micro_batch})"
            )
        return self

    @property
    def narrative_type(self) -> str | None:
        """The narrative type, None for ``narrative=none``."""
        return None if self.narrative == "none" else self.narrative

    @property
    def text_partition(self) -> UserPartition:
        """The user partition of the text loss: the rule of ``regen-bench narrator finetune``
        (:class:`~regen_bench.finetune_manifest.UserPartition`, its default validation share;
        valid and train users both train LUMEN's text), so equal salts and held-out fractions
        put every user in the same bucket."""
        return UserPartition(self.text_salt, self.text_heldout_fraction)


#: Options that define the trained model (the rest only say where/how it runs or is saved).
MODEL_KEYS = (
    "backbone",
    "narrative",
    "max_history",
    "max_field_chars",
    "fields",
    "max_title_words",
    "max_target_tokens",
    "text_salt",
    "text_heldout_fraction",
    "item_head",
    "decode",
)
#: Options a checkpoint does not fix (it saves the others).
RUNTIME_KEYS = (
    "max_new_tokens",
    "frozen_cache_gb",
    "device",
    "save_dir",
    "checkpoint",
    "valid_examples",
    "start_max_tokens",
)
#: Named bundles of options (``preset=NAME``); options given explicitly override them.
#: ``cpu-hour`` fits a `mini` run into an hour on a 2-core CPU with SmolLM2-135M: compact
#: prompts, the longest prefix per user with the item loss at every slot, all but the top 2
#: layers and the item table frozen, a 30-minute budget (docs/models.md has the figures).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu-hour": {
        "max_history": 8,
        "max_field_chars": 120,
        "fields": "title",
        "max_title_words": 6,
        "max_target_tokens": 32,
        "max_new_tokens": 32,
        "max_prefixes": 1,
        "train_layers": 2,
        "train_item_emb": False,
        "item_loss": "all",
        "bucket": True,
        "lr": 1e-4,
        "item_lr": 2e-3,
        "batch_size": 16,
        "micro_batch": 8,
        "epochs": 20,
        "eval_every": 40,
        "valid_examples": 100,
        "patience": 4,
        "train_minutes": 30.0,
    },
}
#: Aliases of the paper's backbones (hub ids need a machine with the hub).
BACKBONE_ALIASES = {"gemma-2b": "google/gemma-2b", "gemma3": "gemma3-270m"}


def _parse(config: Mapping[str, object]) -> LumenOptions:
    return LumenOptions.parse(config, model="lumen")


def given_options(config: Mapping[str, object]) -> dict[str, object]:
    """The explicit options over their preset (values not yet checked)."""
    given = dict(config)
    if "narrative" in given and given["narrative"] is None:
        given["narrative"] = "none"
    preset = given.get("preset", "")
    if isinstance(preset, str) and preset and preset not in PRESETS:
        raise ValueError(
            f"lumen option 'preset' must be one of {', '.join(PRESETS)}, got {preset!r}"
        )
    bundle = PRESETS.get(preset, {}) if isinstance(preset, str) else {}
    return {**bundle, **given}


def resolve_options(
    config: Mapping[str, object], saved: Mapping[str, Any] | None = None
) -> LumenOptions:
    """Checked options from ``config`` (``--set`` values may be strings) over its preset.

    ``saved`` is a checkpoint's metadata: its model-defining and training options replace the
    given ones (a given model-defining option that differs is an error), and its trained
    narrative length is the default ``max_new_tokens``.
    """
    merged = given_options(config)
    if saved is None:
        return _parse(merged)
    explicit = {k: v for k, v in merged.items() if k in MODEL_KEYS and k in config}
    # Only model-defining keys: none of them takes part in a cross-field rule.
    wanted = _parse(explicit).as_dict()
    fields = LumenOptions.model_fields
    for key, value in saved["options"].items():
        if key in RUNTIME_KEYS or key not in fields:
            continue
        if key in explicit and wanted[key] != value:
            raise ValueError(
                f"lumen option '{key}'={config[key]!r} contradicts the checkpoint "
                f"({value!r}); leave it out when loading a checkpoint"
            )
        merged[key] = value
    saved_new = saved.get("max_new_tokens")
    if "max_new_tokens" not in config and isinstance(saved_new, int):
        merged["max_new_tokens"] = saved_new
    return _parse(merged)
