"""Secret redaction for text that leaves the LLM client (errors stored in files or logged).

Providers echo the key in some error bodies ("Incorrect API key provided: sk-..."); such text
must never reach a samples, failures or summary file. :func:`redact` replaces

- the exact value of every secret the process knows: environment variables whose name says
  they hold one (``OPENAI_API_KEY``, ``GEMINI_API_KEY``, ``GOOGLE_API_KEY``, ``HF_TOKEN``, any
  ``*_API_KEY``, ``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``) and values handed to
  :func:`register_secret` (secret-named backend options, see :func:`is_secret_name`);
- tokens shaped like common keys: ``sk-...`` / ``sk-proj-...`` (OpenAI, Anthropic), ``AIza...``
  (Google), ``hf_...`` (Hugging Face) and the token after ``Bearer``.

Shapes require the length and mixed characters of real keys, so ordinary words and product
slugs ("sketch-pad", "sk-ii-facial-essence") are left alone.
"""

from __future__ import annotations

import os
import re
import threading

#: What a secret is replaced by.
MARK = "[REDACTED]"
#: Values shorter than this are not redacted by value: "1" or "true" would mangle every message.
MIN_SECRET_CHARS = 8

_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD)$", re.IGNORECASE)
# A key body: 20+ key characters, holding a digit and an upper-case letter (real keys are
# random; a lower-case slug or a word is not a key).
_BODY = r"(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{20,}(?![A-Za-z0-9_-])"
_SHAPES = re.compile(
    r"\bsk-"
    + _BODY  # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-)
    + r"|\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"  # Google API keys: 39 characters
    + r"|\bhf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])"  # Hugging Face tokens
)
# "Bearer <token>" (an Authorization header echoed back); the token holds a digit.
_BEARER = re.compile(r"\b([Bb]earer\s+)(?=[A-Za-z0-9._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{16,}")

_registered: set[str] = set()
_lock = threading.Lock()


def is_secret_name(name: str) -> bool:
    """Whether an environment variable or option called ``name`` holds a secret."""
    return bool(_SECRET_NAME.search(name))


def register_secret(value: object) -> None:
    """Redact ``value`` (a key given as an option rather than in the environment) from now on."""
    if isinstance(value, str) and len(value) >= MIN_SECRET_CHARS:
        with _lock:
            _registered.add(value)


def known_secrets() -> list[str]:
    """The secret values to redact, longest first (so a key containing another goes whole)."""
    found = {v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= MIN_SECRET_CHARS}
    with _lock:
        found |= _registered
    return sorted(found, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every known secret and key-shaped token replaced by :data:`MARK`."""
    for secret in known_secrets():
        text = text.replace(secret, MARK)
    text = _SHAPES.sub(MARK, text)
    return _BEARER.sub(lambda m: m.group(1) + MARK, text)


__all__ = ["MARK", "is_secret_name", "known_secrets", "redact", "register_secret"]
