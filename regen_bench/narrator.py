"""The narrator: any ranking model + an LLM backend -> narratives (the paper's hybrid setup).

The prompt follows the paper (section 4.2.1): each earlier purchase is written as
``START ID: .. Title: .. Category: .. Description: .. Price: .. Rating: .. User Review: ..
User Critique: .. END``, then ``The last item purchase is: <id>`` and ``Predict the <narrative
type> for the last purchased item.`` Two documented additions make the prompt usable by a
general-purpose LLM that has never seen the item ids: the last item is followed by its title and
category, and by the critique that led the user to it (the conversational task reveals it).
On a task that hides critiques (``narrative``: history -> item + narrative) the prompt has no
``User Critique`` field at all, in the history or for the last item.

Which item is narrated is an explicit choice recorded in every result: ``target`` (the true next
item: the paper's upper bound, Tables 4-5) or ``top1`` (the ranking model's own first choice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from regen_bench.data.dataset import Catalog, UserSequence
from regen_bench.data.schema import NARRATIVE_TYPES, Item
from regen_bench.tasks import Example

#: Bumped whenever the prompt text changes (recorded in results: prompts change numbers).
PROMPT_VERSION = 1
CONDITIONS: tuple[str, ...] = ("target", "top1")
SYSTEM_PROMPT = (
    "You are a shopping assistant. You read a customer's purchase history and write the "
    "requested narrative in plain English, in a few sentences, without lists or headings."
)
#: How each narrative type is named in the prompt (the paper's wording).
NARRATIVE_PHRASES: dict[str, str] = {
    "purchase_reason": "purchase reason",
    "purchase_explanation": "purchase reason explanation",
    "product_endorsement": "product endorsement",
    "user_summary": "brief user summary",
    "user_summary_long": "long user summary",
    "user_profile": "user profile",
}
assert set(NARRATIVE_PHRASES) == set(NARRATIVE_TYPES)


@dataclass
class NarratorConfig:
    """Narrator options, set on the command line as ``--set narrator.<key>=<value>``.

    Keys that are not listed here are passed to the LLM backend (``model``, ``base_url``,
    ``device``...).
    """

    backend: str = "hf"
    condition: Literal["target", "top1"] = "target"
    #: Most recent purchases shown in the prompt (long histories cost tokens, not accuracy).
    max_history: int = 10
    #: Characters kept of each description and review (the release has multi-page ones).
    max_field_chars: int = 200
    max_tokens: int = 96
    temperature: float = 0.0
    seed: int | None = None
    concurrency: int = 4
    #: sqlite request cache; "" disables it. Default: ``<output>/.llm-cache.sqlite``.
    cache: str | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> NarratorConfig:
        """Split ``narrator.*`` options into ours and the backend's; validate ours."""
        own = {f.name for f in fields(cls)} - {"backend_options"}
        cfg = cls(
            **{k: v for k, v in options.items() if k in own},
            backend_options={k: v for k, v in options.items() if k not in own},
        )
        if cfg.condition not in CONDITIONS:
            raise ValueError(
                f"narrator.condition must be one of {', '.join(CONDITIONS)}, got '{cfg.condition}'"
            )
        for name in ("max_history", "max_field_chars", "max_tokens", "concurrency"):
            value = getattr(cfg, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"narrator.{name} must be a positive integer, got {value!r}")
        return cfg

    def record(self) -> dict[str, Any]:
        """What goes into the result file (no cache path: it does not change numbers)."""
        out = asdict(self)
        out.pop("cache")
        out.pop("concurrency")
        return out


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _price(item: Item) -> str:
    return f"${item.price:.2f}" if item.price is not None else "unknown"


def _category(item: Item) -> str:
    return " > ".join(item.categories) or "unknown"


def build_prompt(
    catalog: Catalog,
    user: UserSequence,
    n_history: int,
    narrated: int,
    critique: str | None,
    narrative_type: str,
    config: NarratorConfig,
    *,
    show_critiques: bool = True,
) -> str:
    """The paper's prompt for narrating item ``narrated`` after the first ``n_history`` purchases.

    Only purchases before the narrated one are shown (their reviews and ratings are known);
    nothing about the held-out purchase leaks except what the task reveals (its critique).
    ``show_critiques=False`` (a task without critiques) leaves every critique out, ``user``'s
    and ``critique``, with their ``User Critique`` fields.
    """
    if narrative_type not in NARRATIVE_PHRASES:
        raise ValueError(f"unknown narrative type '{narrative_type}'")
    lim = config.max_field_chars
    start = max(0, n_history - config.max_history)
    parts = ["This is the summary of a user's purchase history."]
    for pos in range(start, n_history):
        item = catalog[int(user.items[pos])]
        summary, text = user.reviews[pos] if pos < len(user.reviews) else ("", "")
        review = _clip(f"{summary}. {text}" if summary and text else summary or text, lim)
        crit = user.critiques[pos] if pos < len(user.critiques) else None
        lead = "First item purchase is" if pos == start else "Next item purchase is"
        said = f" User Critique: {crit or 'none'}" if show_critiques else ""
        parts.append(
            f"{lead} START ID: {item.asin} Title: {item.title} Category: {_category(item)} "
            f"Description: {_clip(item.description, lim) or 'none'} Price: {_price(item)} "
            f"Rating: {float(user.ratings[pos]):g} User Review: {review or 'none'}{said} END."
        )
    last = catalog[narrated]
    said = f" User Critique: {critique or 'none'}" if show_critiques else ""
    parts.append(
        f"The last item purchase is: {last.asin} Title: {last.title} "
        f"Category: {_category(last)}{said}"
    )
    parts.append(f"Predict the {NARRATIVE_PHRASES[narrative_type]} for the last purchased item.")
    return "\n".join(parts)


def narrated_items(targets: Sequence[int], top1: Sequence[int], condition: str) -> list[int]:
    """The item each narrative is about, by the recorded condition."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown narrator condition '{condition}'")
    return [int(i) for i in (targets if condition == "target" else top1)]


@dataclass
class NarrationOutput:
    """What the narrator produced for a batch of test examples."""

    texts: list[str]
    errors: list[str | None]
    usage: dict[str, Any]
    backend: str
    model: str
    #: Role -> pin of the weights the backend loaded (see :func:`backend_weights`).
    weights: dict[str, str] = field(default_factory=dict)


def backend_weights(backend: object) -> dict[str, str]:
    """Role -> pin of the weights an LLM backend loaded, from its optional ``weights()``
    (option -> :func:`regen_bench.weights.pin`): ``narrator`` for its ``model``,
    ``narrator.<option>`` for any other; none for a remote API."""
    own = getattr(backend, "weights", None)
    pins: dict[str, str] = own() if callable(own) else {}
    return {"narrator" if k == "model" else f"narrator.{k}": v for k, v in pins.items()}


def narrate(
    catalog: Catalog,
    users: Sequence[UserSequence],
    examples: Sequence[Example],
    narrated: Sequence[int],
    narrative_type: str,
    config: NarratorConfig,
    *,
    cache_path: str | None,
    progress: bool = True,
    show_critiques: bool = True,
) -> NarrationOutput:
    """Ask the configured LLM backend for one narrative per example (answers in input order).

    ``users[i]`` is the full sequence of ``examples[i]``'s user (reviews and ratings of the
    history come from it); ``show_critiques=False`` (a task without critiques) keeps every
    critique out of the prompts (see :func:`build_prompt`). Failed requests give empty text
    and their error, never an exception: a long run keeps what it finished (the request cache
    makes a rerun resume).
    """
    from regen_bench.llm import LLMRequest, make_client

    client = make_client(
        config.backend,
        cache_path=cache_path,
        concurrency=config.concurrency,
        **config.backend_options,
    )
    requests = [
        LLMRequest(
            system=SYSTEM_PROMPT,
            prompt=build_prompt(
                catalog,
                user,
                len(ex.history),
                item,
                ex.critique,
                narrative_type,
                config,
                show_critiques=show_critiques,
            ),
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            seed=config.seed,
        )
        for user, ex, item in zip(users, examples, narrated, strict=True)
    ]
    try:
        # Before generating: a backend whose weights cannot be pinned wastes no requests.
        weights = backend_weights(client.backend)
        answers = client.complete_many(requests, progress=progress)
    finally:
        client.close()
    return NarrationOutput(
        texts=[a.text.strip() if a.ok else "" for a in answers],
        errors=[a.error for a in answers],
        usage=client.usage(),
        backend=config.backend,
        model=client.backend.model,
        weights=weights,
    )
