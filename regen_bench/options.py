"""Typed model options: declared once per model, parsed from a config or the command line.

A model declares its options as a subclass of :class:`ModelOptions` (a frozen pydantic model
that forbids unknown fields) with ranges, choices and a description per field::

    class MyOptions(ModelOptions):
        hidden: int = Field(default=64, ge=1, description="embedding width")
        loss: Literal["ce", "bce"] = Field(default="ce", description="training loss")

:func:`parse_options` turns a mapping whose values may be command-line strings (``"5"``,
``"1e-3"``, ``"true"``) into a validated instance, or raises a one-line :class:`ValueError`
naming the model, the option, what is allowed and (for an unknown name) the closest name.
:func:`describe_options` lists the options for help texts. The schema module imports no
heavy library, so a plugin can register it as metadata: ``register(name, factory,
options=MyOptions)``. A subclass that only changes defaults uses :func:`redefault`.

A schema may also declare the ranges ``regen-bench tune`` searches, as a class attribute
mapping option names to :class:`LogUniform`, :class:`Uniform`, :class:`IntRange` or
:class:`Choice`::

    class MyOptions(ModelOptions):
        ...
        SEARCH_SPACE = {"lr": LogUniform(1e-4, 1e-2), "hidden": Choice(32, 64, 128)}

:func:`check_search_space` checks it against the schema (every name an option, every end
and choice a valid value). A schema without one cannot be tuned.
"""

from __future__ import annotations

import copy
import difflib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import annotated_types
import pydantic
from pydantic.fields import FieldInfo

__all__ = [
    "Choice",
    "IntRange",
    "LogUniform",
    "ModelOptions",
    "OptionInfo",
    "SearchSpace",
    "Uniform",
    "check_search_space",
    "describe_options",
    "format_options",
    "parse_options",
    "redefault",
]

_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}
_O = TypeVar("_O", bound="ModelOptions")
_V = TypeVar("_V")


@dataclass(frozen=True)
class LogUniform:
    """A float drawn log-uniformly from ``[low, high]`` (both > 0): learning rates, penalties."""

    low: float
    high: float

    def as_dict(self) -> dict[str, Any]:
        return {"type": "log_uniform", "low": self.low, "high": self.high}

    def ends(self) -> tuple[object, ...]:
        return (self.low, self.high)


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from ``[low, high]``: dropout, masking rates."""

    low: float
    high: float

    def as_dict(self) -> dict[str, Any]:
        return {"type": "uniform", "low": self.low, "high": self.high}

    def ends(self) -> tuple[object, ...]:
        return (self.low, self.high)


@dataclass(frozen=True)
class IntRange:
    """An int from ``low`` to ``high`` (inclusive) in steps of ``step``: blocks, layers."""

    low: int
    high: int
    step: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "step": self.step}

    def ends(self) -> tuple[object, ...]:
        return (self.low, self.high)


class Choice:
    """One of a few values: widths, sequence lengths, batch sizes."""

    def __init__(self, *values: object):
        if not values:
            raise ValueError("Choice needs at least one value")
        self.values = values

    def __repr__(self) -> str:
        return f"Choice{self.values!r}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and other.values == self.values

    def __hash__(self) -> int:
        return hash(self.values)

    def as_dict(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.values)}

    def ends(self) -> tuple[object, ...]:
        return self.values


#: One searched dimension, and a schema's search space (option name -> dimension).
Dimension = LogUniform | Uniform | IntRange | Choice
SearchSpace = dict[str, Dimension]


class ModelOptions(pydantic.BaseModel):
    """Base of every model's option schema: frozen, unknown fields forbidden, strict types.

    Construct instances with :func:`parse_options` (or :meth:`parse`), which brings
    command-line strings to the declared types first; direct construction is strict.
    Cross-field rules go in a ``@pydantic.model_validator(mode="after")`` that raises
    ``ValueError``.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, strict=True)

    #: The ranges ``regen-bench tune`` searches (empty: the model cannot be tuned).
    SEARCH_SPACE: ClassVar[SearchSpace] = {}

    @classmethod
    def parse(cls: type[_O], config: Mapping[str, object], *, model: str) -> _O:
        """Shorthand for :func:`parse_options` with this schema."""
        return parse_options(cls, config, model=model)

    @classmethod
    def defaults(cls) -> dict[str, object]:
        """Every option's default, in declaration order."""
        return {name: field.get_default(call_default_factory=True) for name, field in _fields(cls)}

    def as_dict(self) -> dict[str, object]:
        """The option values, in declaration order (what a model's ``config()`` records)."""
        return self.model_dump()


@dataclass(frozen=True)
class OptionInfo:
    """One option as help texts show it."""

    name: str
    type: str  # "int", "float", "bool", "str" or "choice"
    default: object
    allowed: str  # "[0, 1)", ">= 1", "ce | bce", or "" when anything of the type goes
    description: str


def _fields(schema: type[ModelOptions]) -> list[tuple[str, FieldInfo]]:
    return list(schema.model_fields.items())


def _choices(annotation: object) -> tuple[object, ...] | None:
    """The values of a ``Literal[...]`` annotation, else None."""
    return typing.get_args(annotation) if typing.get_origin(annotation) is Literal else None


def _type_name(annotation: object) -> str:
    if _choices(annotation) is not None:
        return "choice"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: FieldInfo) -> str:
    """A field's numeric range as text: ``[0, 1)``, ``>= 1``, ``> 0``, ``<= 5`` or ``""``."""
    low = high = None
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            low = f"[{meta.ge}"
        elif isinstance(meta, annotated_types.Gt):
            low = f"({meta.gt}"
        elif isinstance(meta, annotated_types.Le):
            high = f"{meta.le}]"
        elif isinstance(meta, annotated_types.Lt):
            high = f"{meta.lt})"
    if low and high:
        return f"{low}, {high}"
    if low:
        return (">= " if low[0] == "[" else "> ") + low[1:]
    if high:
        return ("<= " if high[-1] == "]" else "< ") + high[:-1]
    return ""


def _allowed(field: FieldInfo) -> str:
    choices = _choices(field.annotation)
    if choices is not None:
        return " | ".join(str(c) for c in choices)
    return _bounds(field)


def _coerce(annotation: object, value: object) -> object:
    """Bring ``value`` (maybe a command-line string) to ``annotation``; TypeError if it can't.

    Accepts what the command line gives: ``"5"`` or ``"5.0"`` for an int, ``"1e-3"`` for a
    float, ``true/false/yes/no/1/0`` (any case) or a number for a bool. A bool is never taken
    for a number. ``X | None`` takes None or an ``X``; other annotations than bool, int,
    float, str and ``Literal`` are left to pydantic.
    """
    args = typing.get_args(annotation)
    if type(None) in args and len(args) == 2:
        return (
            None if value is None else _coerce(next(a for a in args if a is not type(None)), value)
        )
    if annotation is bool:
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        if isinstance(value, bool | int):
            return bool(value)
    elif annotation is int:
        if not isinstance(value, bool) and isinstance(value, int | float | str):
            try:
                if float(value) == int(float(value)):
                    return int(float(value))
            except (ValueError, OverflowError):
                pass
    elif annotation is float:
        if not isinstance(value, bool) and isinstance(value, int | float | str):
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str or _choices(annotation) is not None:
        if isinstance(value, str):
            return value
    else:
        return value
    raise TypeError


def _unknown(model: str, unknown: list[str], known: list[str]) -> ValueError:
    hints = [difflib.get_close_matches(name, known, n=1) for name in unknown]
    said = ", ".join(
        f"'{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
        for name, hint in zip(unknown, hints, strict=True)
    )
    plural = "s" if len(unknown) > 1 else ""
    return ValueError(
        f"{model}: unknown option{plural} {said}; choose from: {', '.join(known) or '(none)'}"
    )


def _field_error(model: str, name: str, field: FieldInfo, value: object) -> ValueError:
    choices = _choices(field.annotation)
    if choices is not None:
        want = "one of " + ", ".join(str(c) for c in choices)
    else:
        kind = _type_name(field.annotation)
        want = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
        if bounds := _bounds(field):
            want += f" in {bounds}" if "," in bounds else f" {bounds}"
    return ValueError(f"{model} option '{name}' must be {want}, got {value!r}")


def parse_options(schema: type[_O], config: Mapping[str, object], *, model: str) -> _O:
    """A validated ``schema`` instance from ``config`` (unset options take their defaults).

    Raises ValueError with one line naming ``model``, the option and what it accepts.
    """
    fields = dict(_fields(schema))
    unknown = sorted(k for k in config if k not in fields)
    if unknown:
        raise _unknown(model, unknown, list(fields))
    values: dict[str, object] = {}
    for name, value in config.items():
        field = fields[name]
        try:
            values[name] = _coerce(field.annotation, value)
        except TypeError:
            raise _field_error(model, name, field, value) from None
    try:
        return schema.model_validate(values)
    except pydantic.ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = err["loc"]
        if loc and loc[0] in fields and err["type"] != "value_error":
            name = str(loc[0])
            raise _field_error(model, name, fields[name], values.get(name)) from None
        ctx = err.get("ctx") or {}
        detail = str(ctx.get("error", err["msg"]))
        where = f" option '{loc[0]}'" if loc else " options"
        raise ValueError(f"{model}{where}: {detail}") from None


def redefault(schema: type[ModelOptions], name: str, default: _V) -> _V:
    """Option ``name`` of ``schema`` (type, range, description) with another default.

    For a subclass that only changes a default: ``lr: float = redefault(Base, "lr", 2e-3)``.
    (Typed as the default, like pydantic's ``Field``, so type checkers accept the assignment.)
    """
    field = copy.deepcopy(schema.model_fields[name])
    field.default = default
    return typing.cast(_V, field)


def describe_options(schema: type[ModelOptions]) -> list[OptionInfo]:
    """Every option of ``schema`` with its type, default, allowed values and description."""
    return [
        OptionInfo(
            name=name,
            type=_type_name(field.annotation),
            default=field.get_default(call_default_factory=True),
            allowed=_allowed(field),
            description=field.description or "",
        )
        for name, field in _fields(schema)
    ]


def format_options(schema: type[ModelOptions]) -> list[str]:
    """One help line per option: ``name (type, default D, allowed A): description``."""
    lines = []
    for info in describe_options(schema):
        parts = [info.type, f"default {info.default!r}"]
        if info.allowed:
            parts.append(info.allowed)
        text = f": {info.description}" if info.description else ""
        lines.append(f"{info.name} ({', '.join(parts)}){text}")
    return lines


def check_search_space(schema: type[ModelOptions], *, model: str) -> SearchSpace:
    """``schema``'s search space, checked: ValueError naming the model and the bad entry."""
    space = dict(schema.SEARCH_SPACE)
    fields = dict(_fields(schema))
    for name, dim in space.items():
        if name not in fields:
            raise _unknown(f"{model} search space", [name], list(fields))
        if isinstance(dim, LogUniform) and not 0 < dim.low < dim.high:
            raise ValueError(f"{model} search space '{name}': need 0 < low < high, got {dim}")
        if isinstance(dim, Uniform | IntRange) and not dim.low < dim.high:
            raise ValueError(f"{model} search space '{name}': need low < high, got {dim}")
        for value in dim.ends():
            parse_options(schema, {name: value}, model=f"{model} search space")
    return space
