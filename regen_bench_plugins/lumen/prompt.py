"""LUMEN prompts (paper section 4.2.2) as token ids with item-ID slots.

A prompt is built as *segments*: text pieces and item slots. Every item id in the paper's prompt
(``START ID: ID_TOKEN Title: ...``) is one slot; the tokenizer never sees item ids, so the text
vocabulary and the item vocabulary stay separate. Text pieces are tokenized one by one (without
special tokens) and concatenated; a slot takes one position, filled with a placeholder token id
that the network replaces by the item's embedding (see :mod:`regen_bench_plugins.lumen.net`).

Layout (``max_history`` most recent purchases, fields clipped to ``max_field_chars``)::

    This is the summary of a user's purchase history. First item purchase is START ID: [item]
    Title: .. Category: .. Description: .. Price: .. Rating: .. User Review: .. User Critique: ..
    END. Next item purchase is START ID: [item] ... END. User Critique: <critique leading to the
    next purchase>. The next item purchase, and the <narrative> are:
    target: ID: [item] Text: <narrative></s>

Two documented differences from the paper's text: later purchases also read ``START ID:
ID_TOKEN`` (the paper elides "ID:" after the first), and the critique that leads to the
predicted purchase is stated before the question (the critique and conversational tasks reveal
it; the paper's prompt puts each critique inside the block of the item it led to, which for the
predicted item would otherwise be missing). With ``narrative=None`` the question reads ``The
next item purchase is:`` and the target has no ``Text:`` part. With ``decode=start_switch`` the
prompt stops after ``are:`` and the target reads `` START ID: [item] Text: ...``: the model
writes the START marker (:data:`START_MARKER`, trained by the text loss on every example)
before the item step.

On a task that hides critiques (``sequential``, ``narrative``: the training data carries none)
the prompt has no ``User Critique`` field at all (``show_critiques=False``): no critique text,
and no tokens spent on ``User Critique: none``.

The narrative of a user trains the text loss only when the user is outside the ``heldout``
bucket of the options' :attr:`~regen_bench_plugins.lumen.options.LumenOptions.text_partition`
(the fine-tuned narrator's rule): every user is a test user, and the held-out ones are those
the text metrics score. The item loss trains on every user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from regen_bench import Catalog, Example, Item, UserSequence
from regen_bench.narrator import NARRATIVE_PHRASES
from regen_bench_plugins.lumen.options import LumenOptions

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: Bumped whenever the prompt text changes (recorded in ``config()``: prompts change numbers).
#: v2: no ``User Critique`` field on the tasks without critiques.
PROMPT_VERSION = 2
#: The fixed text around the generated item in the target (forced while decoding).
ID_PREFIX = " ID:"
TEXT_PREFIX = " Text:"
#: The START marker as the prompt writes it before every item slot (``decode=start_switch``):
#: the target begins with it (trained by the text loss), and decoding switches to the item
#: vocabulary once the generated tokens end with it.
START_MARKER = " START ID:"


def _clip(text: str | None, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


#: ``fields`` values: the paper's item block, or the title and critique only (CPU budgets).
FIELDS = ("full", "title")


def _title(item: Item, limit: int, words: int) -> str:
    title = " ".join((item.title or "").split()[:words] if words else (item.title or "").split())
    return _clip(title, limit) or "unknown"


def _item_fields(item: Item, limit: int, words: int) -> str:
    price = f"${item.price:.2f}" if item.price is not None else "unknown"
    category = " > ".join(item.categories) or "unknown"
    return (
        f" Title: {_title(item, limit, words)} Category: {category}"
        f" Description: {_clip(item.description, limit) or 'none'} Price: {price}"
    )


def prompt_segments(
    catalog: Catalog,
    items: Sequence[int] | np.ndarray,
    ratings: Sequence[float] | np.ndarray,
    reviews: Sequence[tuple[str, str]],
    critiques: Sequence[str | None],
    next_critique: str | None,
    narrative_type: str | None,
    *,
    max_history: int,
    max_field_chars: int,
    fields: str = "full",
    max_title_words: int = 0,
    show_critiques: bool = True,
) -> list[str | int]:
    """The prompt for predicting the purchase after ``items`` (text pieces and item slots).

    ``fields="title"`` keeps only each item's title (its first ``max_title_words`` words when
    that is not 0) and the critique that led to it: no category, description, price, rating or
    review (a CPU token budget; the paper's block is ``fields="full"``).
    ``show_critiques=False`` leaves every ``User Critique`` field out (``critiques`` and
    ``next_critique`` unread).
    """
    if fields not in FIELDS:
        raise ValueError(f"lumen prompt fields must be one of {', '.join(FIELDS)}, got {fields!r}")
    start = max(0, len(items) - max_history)
    lim = max_field_chars
    segs: list[str | int] = ["This is the summary of a user's purchase history."]
    for pos in range(start, len(items)):
        lead = "First item purchase is" if pos == start else "Next item purchase is"
        summary, text = reviews[pos] if pos < len(reviews) else ("", "")
        review = _clip(f"{summary}. {text}" if summary and text else summary or text, lim)
        crit = critiques[pos] if pos < len(critiques) else None
        item = catalog[int(items[pos])]
        if fields == "title":
            block = f" Title: {_title(item, lim, max_title_words)}"
        else:
            block = (
                _item_fields(item, lim, max_title_words)
                + f" Rating: {float(ratings[pos]):g} User Review: {review or 'none'}"
            )
        said = f" User Critique: {_clip(crit, lim) or 'none'}" if show_critiques else ""
        segs += [f" {lead} START ID:", int(items[pos]), block + said + " END."]
    if show_critiques:
        segs.append(f" User Critique: {_clip(next_critique, lim) or 'none'}.")
    if narrative_type is None:
        segs.append(" The next item purchase is:")
    else:
        segs.append(f" The next item purchase, and the {NARRATIVE_PHRASES[narrative_type]} are:")
    return segs


@dataclass
class Encoded:
    """One tokenized sequence: ids, the item slots, and what is trained where.

    ``labels[t]`` is the text token to predict *at* position ``t`` (from the state at ``t-1``),
    -100 where there is none; ``item_target`` is predicted from the state at ``item_pos - 1``.
    """

    ids: list[int]
    #: The user of a training sequence ("" for a prompt).
    user_id: str = ""
    slot_pos: list[int] = field(default_factory=list)
    slot_items: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    item_pos: int = -1
    item_target: int = -1
    #: Whether the labels hold a narrative (not only the START marker).
    narrative: bool = False


class PromptEncoder:
    """Turns segments into :class:`Encoded` with a transformers tokenizer."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, *, max_target_tokens: int):
        self.tok = tokenizer
        self.max_target_tokens = max_target_tokens
        # Any real id works as the placeholder: its embedding is always replaced.
        self.placeholder = int(
            tokenizer.unk_token_id
            if tokenizer.unk_token_id is not None
            else tokenizer.pad_token_id or 0
        )
        self.bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        self.eos = tokenizer.eos_token_id
        self._cache: dict[str, list[int]] = {}

    def text_ids(self, text: str) -> list[int]:
        got = self._cache.get(text)
        if got is None:
            got = list(self.tok(text, add_special_tokens=False)["input_ids"])
            if len(self._cache) < 100_000:  # item fields repeat across prefixes and users
                self._cache[text] = got
        return got

    def prompt(self, segs: Sequence[str | int]) -> Encoded:
        """The prompt followed by the forced ``ID:`` (the next position is the item slot)."""
        return self._encode([*segs, ID_PREFIX])

    def open_prompt(self, segs: Sequence[str | int]) -> Encoded:
        """The prompt alone (``decode=start_switch``: the model writes the START marker)."""
        return self._encode(segs)

    def _encode(self, segs: Sequence[str | int]) -> Encoded:
        enc = Encoded(ids=list(self.bos))
        for seg in segs:
            if isinstance(seg, str):
                enc.ids += self.text_ids(seg)
            else:
                enc.slot_pos.append(len(enc.ids))
                enc.slot_items.append(seg)
                enc.ids.append(self.placeholder)
        enc.labels = [-100] * len(enc.ids)
        return enc

    def training(
        self,
        segs: Sequence[str | int],
        target: int,
        narrative: str | None,
        *,
        start: bool = False,
    ) -> Encoded:
        """Prompt + ``ID: [target]`` (+ `` Text: narrative</s>`` when there is a narrative).

        ``start`` (``decode=start_switch``): the target reads `` START ID: [target] ...`` and
        the marker's tokens are text labels, so the model learns to write it."""
        enc = self.open_prompt(segs) if start else self.prompt(segs)
        if start:
            marker = self.text_ids(START_MARKER)
            enc.ids += marker
            enc.labels += marker
        enc.item_pos, enc.item_target = len(enc.ids), int(target)
        enc.slot_pos.append(len(enc.ids))
        enc.slot_items.append(int(target))
        enc.ids.append(self.placeholder)
        enc.labels.append(-100)  # trained by the item loss, not the text loss
        if narrative is not None:
            text = self.text_ids(TEXT_PREFIX)
            body = self.text_ids(" " + " ".join(narrative.split()))[: self.max_target_tokens]
            tail = [*text, *body, *([self.eos] if self.eos is not None else [])]
            enc.ids += tail
            enc.labels += tail
            enc.narrative = True
        return enc


def _layout(opts: LumenOptions, show_critiques: bool) -> dict[str, Any]:
    """The keyword arguments of :func:`prompt_segments` that a model's options set."""
    return {
        "max_history": opts.max_history,
        "max_field_chars": opts.max_field_chars,
        "fields": opts.fields,
        "max_title_words": opts.max_title_words,
        "show_critiques": show_critiques,
    }


def shows_critiques(train: Sequence[UserSequence], valid: Sequence[Example]) -> bool:
    """Whether a task shows critiques, from what it gave: any critique in the training
    sequences or the validation examples (the tasks without critique remove every one)."""
    return any(c for u in train for c in u.critiques) or any(
        ex.critique or any(ex.history_critiques) for ex in valid
    )


def training_encodings(
    encoder: PromptEncoder,
    catalog: Catalog,
    opts: LumenOptions,
    train: Sequence[UserSequence],
    *,
    show_critiques: bool = True,
) -> list[Encoded]:
    """The prefixes of every training sequence ``items`` (a user's first N-2 purchases):
    history ``items[:j]`` -> target ``items[j]`` for ``j >= 1``, the longest ``max_prefixes``
    of them (0: all), from the first ``max_train_users`` users (0: all).

    The narrative is the target of the longest prefix only: REGEN narratives describe the user
    and their *last* purchase, so each is trained once per user, not once per prefix; and only
    for users outside the ``heldout`` bucket of ``opts.text_partition`` (the ones scored).
    """
    users = list(train)
    if opts.max_train_users:
        users = users[: opts.max_train_users]
    narrative = opts.narrative_type
    rule = opts.text_partition
    out = []
    for user in users:
        n = len(user)
        last = list(range(1, n))
        if opts.max_prefixes:
            last = last[-opts.max_prefixes :]
        text = user.narratives.as_dict().get(narrative) if narrative else None
        if text is not None and rule.bucket(user.user_id) == "heldout":
            text = None  # the text metrics are computed on this user's narrative
        for j in last:
            segs = prompt_segments(
                catalog,
                user.items[:j],
                user.ratings[:j],
                user.reviews[:j],
                user.critiques[:j],
                user.critiques[j] if j < len(user.critiques) else None,
                narrative,
                **_layout(opts, show_critiques),
            )
            said = text if j == n - 1 else None
            enc = (
                encoder.training(segs, int(user.items[j]), said, start=True)
                if opts.decode == "start_switch"
                else encoder.training(segs, int(user.items[j]), said)
            )
            enc.user_id = user.user_id
            out.append(enc)
    return out


def example_segments(
    catalog: Catalog,
    opts: LumenOptions,
    ex: Example,
    user: UserSequence | None,
    *,
    show_critiques: bool = True,
) -> list[str | int]:
    """Segments of a test/validation example; ``user`` (when known) gives the ratings and
    reviews of the history's purchases, which an :class:`Example` does not carry. Unknown ones
    read ``Rating: 5 User Review: none``. The critiques shown are the example's own (none on a
    task without critique), and none at all with ``show_critiques=False``."""
    n = len(ex.history)
    ratings = [5.0] * n
    reviews = [("", "")] * n
    if user is not None:
        k = min(n, len(user), len(user.reviews))
        ratings[:k] = [float(r) for r in user.ratings[:k]]
        reviews[:k] = list(user.reviews[:k])
    return prompt_segments(
        catalog,
        ex.history,
        ratings,
        reviews,
        ex.history_critiques,
        ex.critique,
        opts.narrative_type,
        **_layout(opts, show_critiques),
    )
