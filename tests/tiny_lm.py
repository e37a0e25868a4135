"""Tiny random Llama checkpoints for tests: built offline in a temp folder, saved with a
tokenizer, loadable by every code path that takes a hub id or a local folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def chat_tokenizer(raw: Any, *, sep: str = " ", chat: bool = True, **special: str) -> Any:
    """A transformers fast tokenizer over the ``tokenizers`` object ``raw`` with a minimal
    chat template (``<|role|>`` markers joined by ``sep``) unless ``chat`` is false."""
    import transformers

    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=raw, **special)
    if chat:
        tok.chat_template = (
            "{% for m in messages %}<|{{ m['role'] }}|>" + sep + "{{ m['content'] }}" + sep
        ) + "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    return tok


def save_tiny_llama(
    out: Path,
    tokenizer: Any,
    vocab_size: int,
    *,
    max_positions: int = 1024,
    bos_token_id: int = 2,
    eos_token_id: int = 3,
) -> Path:
    """Save a seeded 2-layer Llama (hidden 32, 4 heads, 2 KV heads) and ``tokenizer`` in
    ``out``; the same arguments give the same weights."""
    import torch
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        pad_token_id=0,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
