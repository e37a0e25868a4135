"""Typed model options: parsing command-line strings, one-line errors, help descriptions."""

from __future__ import annotations

from typing import Literal

import pydantic
import pytest
from pydantic import Field

from regen_bench.options import (
    ModelOptions,
    describe_options,
    format_options,
    parse_options,
    redefault,
)


class Opts(ModelOptions):
    hidden: int = Field(default=64, ge=1, description="embedding width")
    heads: int = Field(default=1, ge=1, description="attention heads")
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0, description="dropout rate")
    lr: float = Field(default=2e-3, gt=0.0, description="learning rate")
    loss: Literal["ce", "bce"] = Field(default="ce", description="training loss")
    mask: bool = Field(default=False, description="mask seen items")
    device: str = Field(default="cpu", description="torch device")
    limit: int | None = Field(default=None, ge=0, description="optional cap")

    @pydantic.model_validator(mode="after")
    def _heads_divide_hidden(self) -> Opts:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        return self


def test_defaults_in_declaration_order() -> None:
    opts = parse_options(Opts, {}, model="m")
    assert opts.as_dict() == Opts.defaults()
    assert list(opts.as_dict()) == list(Opts.model_fields)


@pytest.mark.parametrize(
    ("name", "given", "parsed"),
    [
        ("hidden", "16", 16),
        ("hidden", "16.0", 16),
        ("hidden", 16.0, 16),
        ("lr", "1e-3", 1e-3),
        ("lr", 1, 1.0),
        ("mask", "TRUE", True),
        ("mask", "no", False),
        ("mask", 1, True),
        ("loss", "bce", "bce"),
        ("limit", "3", 3),
        ("limit", None, None),
    ],
)
def test_command_line_strings_are_coerced(name: str, given: object, parsed: object) -> None:
    value = parse_options(Opts, {name: given}, model="m").as_dict()[name]
    assert value == parsed and type(value) is type(parsed)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"hiden": 8}, "m: unknown option 'hiden' (did you mean 'hidden'?); choose from: hidden,"),
        ({"hidden": "wide"}, "m option 'hidden' must be an int >= 1, got 'wide'"),
        ({"hidden": True}, "m option 'hidden' must be an int >= 1, got True"),
        ({"hidden": 0}, "m option 'hidden' must be an int >= 1, got 0"),
        ({"hidden": 2.5}, "m option 'hidden' must be an int >= 1, got 2.5"),
        ({"dropout": 1.0}, "m option 'dropout' must be a float in [0.0, 1.0), got 1.0"),
        ({"lr": 0}, "m option 'lr' must be a float > 0.0, got 0.0"),
        ({"loss": "hinge"}, "m option 'loss' must be one of ce, bce, got 'hinge'"),
        ({"mask": "maybe"}, "m option 'mask' must be a bool, got 'maybe'"),
        ({"device": 3}, "m option 'device' must be a str, got 3"),
        ({"hidden": 30, "heads": 4}, "m options: hidden (30) must be divisible by heads (4)"),
    ],
)
def test_errors_are_one_clear_line(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_options(Opts, config, model="m")
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text


def test_several_unknown_names_are_all_named() -> None:
    with pytest.raises(
        ValueError, match=r"unknown options 'hiden' \(did you mean 'hidden'\?\), 'zz'"
    ):
        Opts.parse({"zz": 1, "hiden": 2}, model="m")


def test_instances_are_frozen_and_strict() -> None:
    opts = Opts.parse({"hidden": "8"}, model="m")
    with pytest.raises(pydantic.ValidationError):
        opts.hidden = 4
    with pytest.raises(pydantic.ValidationError):
        Opts(hidden="8")  # type: ignore[arg-type]


def test_describe_and_format_for_help() -> None:
    info = {i.name: i for i in describe_options(Opts)}
    assert (info["hidden"].type, info["hidden"].default, info["hidden"].allowed) == (
        "int",
        64,
        ">= 1",
    )
    assert info["dropout"].allowed == "[0.0, 1.0)" and info["lr"].allowed == "> 0.0"
    assert (info["loss"].type, info["loss"].allowed) == ("choice", "ce | bce")
    assert info["device"].allowed == "" and info["device"].description == "torch device"
    lines = format_options(Opts)
    assert lines[0] == "hidden (int, default 64, >= 1): embedding width"
    assert "loss (choice, default 'ce', ce | bce): training loss" in lines


def test_schema_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, regen_bench.options; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_redefault_keeps_range_and_description() -> None:
    class Faster(Opts):
        lr: float = redefault(Opts, "lr", 1e-2)

    info = {i.name: i for i in describe_options(Faster)}["lr"]
    assert (info.default, info.allowed, info.description) == (1e-2, "> 0.0", "learning rate")
    assert Opts.defaults()["lr"] == 2e-3
    with pytest.raises(ValueError, match=r"m option 'lr' must be a float > 0.0, got 0.0"):
        Faster.parse({"lr": 0}, model="m")
