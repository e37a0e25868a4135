"""LUMEN's option schema, presets and checkpoint merging (no torch needed)."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from regen_bench.data.schema import NARRATIVE_TYPES
from regen_bench.options import format_options
from regen_bench_plugins.lumen.options import (
    MODEL_KEYS,
    PRESETS,
    RUNTIME_KEYS,
    LumenOptions,
    resolve_options,
)


def _choices(name: str) -> tuple[object, ...]:
    return typing.get_args(LumenOptions.model_fields[name].annotation)


def test_the_schema_lists_every_narrative_type_and_preset() -> None:
    assert _choices("narrative") == ("none", *NARRATIVE_TYPES)
    assert _choices("preset") == ("", *PRESETS)
    fields = set(LumenOptions.model_fields)
    assert set(MODEL_KEYS) | set(RUNTIME_KEYS) <= fields
    assert all(set(bundle) <= fields for bundle in PRESETS.values())
    assert any(
        line.startswith("max_history (int, default 10, >= 1)")
        for line in format_options(LumenOptions)
    )


def test_preset_values_apply_and_explicit_strings_override_them() -> None:
    opts = resolve_options({"preset": "cpu-hour", "max_history": "3", "bucket": "no"})
    assert opts.max_history == 3 and opts.bucket is False
    assert opts.fields == "title" and opts.train_minutes == 30.0 and opts.micro_batch == 8
    # Recorded in declaration order, every option present.
    assert list(opts.as_dict()) == list(LumenOptions.defaults())
    assert resolve_options({}).as_dict() == LumenOptions.defaults()
    assert resolve_options({"narrative": None}).narrative_type is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"preset": "fast"}, "'preset' must be one of cpu-hour, got 'fast'"),
        ({"max_hist": 3}, "unknown option 'max_hist' (did you mean 'max_history'?)"),
        ({"batch_size": 6}, "batch_size (6) must be a multiple of micro_batch (4)"),
        ({"narrative": "poem"}, "option 'narrative' must be one of none, purchase_reason"),
        ({"lr": "0"}, "option 'lr' must be a float > 0"),
        ({"train_layers": -2}, "option 'train_layers' must be an int >= -1"),
    ],
)
def test_bad_options_get_one_line_messages(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        resolve_options(config)
    assert message in str(err.value) and "\n" not in str(err.value)


def _saved(**options: Any) -> dict[str, Any]:
    saved = {k: v for k, v in LumenOptions.defaults().items() if k not in RUNTIME_KEYS}
    return {"options": {**saved, **options}, "max_new_tokens": 8}


def test_a_checkpoint_fixes_its_options_but_not_the_runtime_ones() -> None:
    saved = _saved(max_history=3, fields="title", lr=0.01)
    opts = resolve_options({"checkpoint": "ck", "lr": "0.5", "device": "cpu"}, saved)
    assert (opts.max_history, opts.fields, opts.lr) == (3, "title", 0.01)
    assert opts.device == "cpu" and opts.checkpoint == "ck"
    assert opts.max_new_tokens == 8  # the trained length, unless given
    assert resolve_options({"max_new_tokens": "5"}, saved).max_new_tokens == 5
    assert resolve_options({"max_history": "3"}, saved).max_history == 3  # agrees: fine
    with pytest.raises(ValueError, match="'fields'='full' contradicts the checkpoint"):
        resolve_options({"fields": "full"}, saved)


def test_the_hook_registers_the_schema() -> None:
    from regen_bench.plugins import get_plugin_manager

    assert get_plugin_manager().entries["model"]["lumen"].options is LumenOptions


def test_the_variant_options_default_to_the_current_model_and_are_checked() -> None:
    opts = resolve_options({})
    assert (opts.item_head, opts.decode, opts.item_init) == ("separate", "forced", "random")
    assert _choices("item_head") == ("separate", "tied")
    assert _choices("decode") == ("forced", "start_switch")
    assert _choices("item_init") == ("random", "title")
    given = resolve_options({"item_head": "tied", "decode": "start_switch", "item_init": "title"})
    assert given.as_dict()["item_head"] == "tied" and given.as_dict()["item_init"] == "title"
    # The head and the decoding define the trained model; the marker budget is a runtime one.
    assert {"item_head", "decode"} <= set(MODEL_KEYS) and "start_max_tokens" in RUNTIME_KEYS
    for key, bad in (("item_head", "shared"), ("decode", "greedy"), ("item_init", "text")):
        with pytest.raises(ValueError) as err:
            resolve_options({key: bad})
        assert f"option '{key}' must be one of" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="'start_max_tokens' must be an int >= 0"):
        resolve_options({"start_max_tokens": "-1"})
    saved = _saved(item_head="tied", decode="start_switch")
    with pytest.raises(ValueError, match="'decode'='forced' contradicts the checkpoint"):
        resolve_options({"decode": "forced"}, saved)
    assert resolve_options({"start_max_tokens": "2"}, saved).start_max_tokens == 2
