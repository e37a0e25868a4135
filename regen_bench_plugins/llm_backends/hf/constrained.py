"""JSON-schema constrained decoding and answer-only repetition controls for the ``hf`` backend.

The grammar and the token walk are lm-format-enforcer's; what lives here is the glue its own
transformers integration would provide (that integration, 0.11.3, does not import under
transformers 5: it imports the removed ``transformers.tokenization_utils``), a schema rewrite
that makes it enforce integer ranges, and one logits processor that applies repetition controls
and the schema masks together.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from regen_bench.llm import LLMRequest

if TYPE_CHECKING:
    import torch
    from lmformatenforcer import TokenEnforcer, TokenEnforcerTokenizerData
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

#: Integer ranges up to this many values become an ``enum`` for the enforcer (see for_enforcer).
_MAX_ENUM_RANGE = 100
#: Characters no token may bring into a constrained answer (see tokenizer_data).
_BAD_IN_JSON = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\ufffd]")
_warned_no_enforcer = False


def for_enforcer(schema: Any) -> Any:
    """``schema`` with small bounded integer ranges written as an ``enum``.

    lm-format-enforcer checks the type of a number but not ``minimum``/``maximum``; a rater's
    ``{"type": "integer", "minimum": 1, "maximum": 7}`` would still let a model write ``42``.
    An equivalent ``enum`` (which it does enforce) closes that gap. Exclusive bounds and
    ``multipleOf`` are honoured too; anything else is passed through untouched.
    """
    if isinstance(schema, list):
        return [for_enforcer(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {k: for_enforcer(v) for k, v in schema.items()}
    if out.get("type") != "integer" or "enum" in out:
        return out
    lo = out.get("minimum", out.get("exclusiveMinimum"))
    hi = out.get("maximum", out.get("exclusiveMaximum"))
    step = out.get("multipleOf", 1)
    numbers = [b for b in (lo, hi, step) if isinstance(b, (int, float)) and not isinstance(b, bool)]
    if len(numbers) < 3 or not isinstance(step, int) or step < 1:
        return out  # unbounded, draft-4 boolean exclusive bounds, or a fractional multipleOf
    assert lo is not None and hi is not None  # (for mypy: checked just above)
    first = math.ceil(lo) + (1 if "minimum" not in out and lo == math.ceil(lo) else 0)
    last = math.floor(hi) - (1 if "maximum" not in out and hi == math.floor(hi) else 0)
    if 0 <= last - first < _MAX_ENUM_RANGE:
        values = [v for v in range(first, last + 1) if v % step == 0]
        if values:
            out["enum"] = values
    return out


def tokenizer_data(
    tokenizer: PreTrainedTokenizerBase, eos_ids: Sequence[int]
) -> TokenEnforcerTokenizerData:
    """lm-format-enforcer's view of the vocabulary, as its transformers integration builds it.

    Each regular token is decoded after a ``"0"`` token: a longer text than the token alone
    means the token starts a word (sentencepiece's leading space). Batched decoding keeps
    this to about a second for a 50k vocabulary. Two kinds of token are left out, so the
    model can never pick them under a schema: control characters other than newlines (the
    library lets them into strings, where JSON forbids them) and byte pieces of a character
    (they decode to U+FFFD alone; the library would count them as characters, and a model
    can leave the character unfinished). Non-ASCII text is then written with whole-character
    tokens only.
    """
    from lmformatenforcer import TokenEnforcerTokenizerData

    tok = tokenizer
    vocab_size = len(tok)
    zero = tok.encode("0", add_special_tokens=False)[-1]
    special = set(tok.all_special_ids)
    ids = [i for i in range(vocab_size) if i not in special]
    alone = tok.batch_decode([[i] for i in ids])
    after_zero = [t[1:] for t in tok.batch_decode([[zero, i] for i in ids])]
    regular = [
        (i, text, len(text) > len(one))
        for i, text, one in zip(ids, after_zero, alone, strict=True)
        if text and not _BAD_IN_JSON.search(text)
    ]

    def decode(tokens: list[int]) -> str:
        return str(tok.decode(tokens)).rstrip("\ufffd")  # drop half a multi-byte character

    return TokenEnforcerTokenizerData(regular, decode, list(eos_ids), False, vocab_size)


class SchemaEnforcers:
    """One lm-format-enforcer ``TokenEnforcer`` per request that has a ``json_schema``.

    The vocabulary view (:func:`tokenizer_data`) is built on first use and kept. Without the
    library every row is unconstrained and one warning says so.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, eos_ids: Sequence[int]):
        self.tokenizer = tokenizer
        self.eos_ids = list(eos_ids)
        self._data: TokenEnforcerTokenizerData | None = None

    def __call__(self, reqs: Sequence[LLMRequest]) -> list[TokenEnforcer | None]:
        """The enforcer of each row, None for a row without a schema."""
        global _warned_no_enforcer
        if all(r.json_schema is None for r in reqs):
            return [None] * len(reqs)
        try:
            from lmformatenforcer import JsonSchemaParser, TokenEnforcer
        except ImportError:
            if not _warned_no_enforcer:
                _warned_no_enforcer = True
                log.warning(
                    "hf backend: lm-format-enforcer is not installed, so json_schema answers are "
                    "not constrained (small models then often answer prose): "
                    "pip install 'regen-bench[local-llm]'"
                )
            return [None] * len(reqs)
        if self._data is None:
            self._data = tokenizer_data(self.tokenizer, self.eos_ids)
        data = self._data
        return [
            None
            if r.json_schema is None
            else TokenEnforcer(data, JsonSchemaParser(for_enforcer(r.json_schema)))
            for r in reqs
        ]


class AnswerLogits:
    """A logits processor for a batch: repetition controls, then each row's JSON schema mask.

    Repetition controls look at the answer only (the tokens after ``prompt_len``, the padded
    prompt width, the same for every row of a left-padded batch): transformers' own
    ``repetition_penalty`` and ``no_repeat_ngram_size`` count the prompt too, so they would push
    a model away from the item names and the JSON keys it has to repeat. The penalty and the
    n-gram ban are the library's processors applied to that slice; ``no_copy_ngram_size`` bans
    runs of prompt + answer.

    Schema masks: one ``TokenEnforcer`` per row (``None`` = unconstrained row); each sees its
    own full input ids, left padding and prompt included, and the library takes the first
    sequence it is shown as the prompt, so rows of different prompts and schemas in one batch
    do not mix. A step where the n-gram ban would leave a row no token the schema allows keeps
    the schema's choice (the ban is lifted for that row and step): the JSON must be finished.
    """

    def __init__(
        self,
        enforcers: Sequence[TokenEnforcer | None],
        prompt_len: int,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        no_copy_ngram_size: int = 0,
    ):
        self.enforcers = list(enforcers)
        self.prompt_len = prompt_len
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.no_copy_ngram_size = no_copy_ngram_size

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch
        from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

        answer = input_ids[:, self.prompt_len :]
        if self.repetition_penalty != 1.0 and answer.shape[1] > 0:
            scores = RepetitionPenaltyLogitsProcessor(self.repetition_penalty)(answer, scores)
        if any(e is not None for e in self.enforcers):
            allowed = torch.zeros_like(scores, dtype=torch.bool)
            for row, enforcer in enumerate(self.enforcers):
                if enforcer is None:
                    allowed[row] = True
                    continue
                tokens = enforcer.get_allowed_tokens(input_ids[row].tolist()).allowed_tokens
                ids = torch.tensor(tokens, dtype=torch.long, device=scores.device)
                allowed[row, ids[ids < scores.shape[-1]]] = True
            scores = scores.masked_fill(~allowed, -math.inf)
        # (ids, n): the answer alone (no repeats), then prompt + answer (no copies either).
        for ids, n in ((answer, self.no_repeat_ngram_size), (input_ids, self.no_copy_ngram_size)):
            if n > 0 and answer.shape[1] >= 1:
                banned = NoRepeatNGramLogitsProcessor(n)(ids, scores.clone())
                keep = torch.isfinite(banned).any(dim=1, keepdim=True)
                scores = torch.where(keep, banned, scores)
        return scores


__all__ = ["AnswerLogits", "SchemaEnforcers", "for_enforcer", "tokenizer_data"]
