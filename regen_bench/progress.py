"""Progress of long loops, and how much a command prints: one rule for every trainer.

Two settings, set by the command line for a command (:func:`output`, from ``-q`` and ``-v``):

- *quiet* (``-q``): our own progress (epoch lines and bars) is off;
- *verbose* (``-v``): third-party libraries may print their own bars, logs and chatter
  (bert-score's "computing bert embedding...", transformers' "Loading weights" bars), which
  :func:`silence_third_party` otherwise turns off.

A trainer reports its epochs (or steps) through :class:`Progress`: a tqdm bar on a terminal,
and a plain line at most every few seconds otherwise (a log file, CI, a pipe), so that a run
is never silent; nothing when quiet. Plugins may use it::

    from regen_bench.progress import Progress

    with Progress("mymodel", total=epochs) as bar:
        for epoch in range(1, epochs + 1):
            ...
            bar.update(1, {"loss": f"{loss:.4f}", "ndcg@10": f"{ndcg:.4f}"})

Library use (no command line) starts from ``REGEN_BENCH_QUIET=1`` / ``REGEN_BENCH_VERBOSE=1``
when they are set, else shows progress and leaves third-party libraries alone.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

ENV_QUIET = "REGEN_BENCH_QUIET"
ENV_VERBOSE = "REGEN_BENCH_VERBOSE"
#: Seconds between two plain progress lines (the first and the last are always written).
LINE_INTERVAL_S = 5.0

#: Environment settings that quieten Hugging Face libraries when they are imported later
#: (``setdefault``: a value the user set wins). Their own bars go; errors still show.
_QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # also transformers' "Loading weights" bars
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


_settings = {"quiet": _env_flag(ENV_QUIET), "verbose": _env_flag(ENV_VERBOSE)}


def configure(*, quiet: bool | None = None, verbose: bool | None = None) -> None:
    """Set the process-wide settings (None keeps the current value)."""
    if quiet is not None:
        _settings["quiet"] = quiet
    if verbose is not None:
        _settings["verbose"] = verbose


def is_quiet() -> bool:
    """True when our own progress is off (``-q``)."""
    return _settings["quiet"]


def is_verbose() -> bool:
    """True when third-party libraries may print their own progress and logs (``-v``)."""
    return _settings["verbose"] and not _settings["quiet"]


@contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """Quiet within the block when ``enabled`` (else the settings stay as they are)."""
    before = dict(_settings)
    if enabled:
        _settings["quiet"] = True
    try:
        yield
    finally:
        _settings.update(before)


def silence_third_party() -> None:
    """Turn off third-party bars and informational logs (the default of the command line).

    Environment settings cover libraries imported afterwards; those already imported are
    told directly.
    """
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if sys.modules.get("transformers") is not None:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if sys.modules.get("huggingface_hub") is not None:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def _hf_state() -> tuple[int, bool] | None:
    """transformers' verbosity and progress-bar switch, if it is imported."""
    if sys.modules.get("transformers") is None:
        return None
    from transformers.utils import logging as hf_logging

    return hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()


@contextmanager
def output(*, quiet: bool = False, verbose: bool = False) -> Iterator[None]:
    """A command's settings within the block: ``-q``, ``-v``, and third-party output silenced
    unless verbose. Everything is restored afterwards, so a command run in-process (tests, a
    notebook) leaves no setting behind."""
    before, hf_before = dict(_settings), _hf_state()
    env = {key: os.environ.get(key) for key in _QUIET_ENV}
    configure(quiet=quiet, verbose=verbose)
    if not is_verbose():
        silence_third_party()
    try:
        yield
    finally:
        _settings.update(before)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _restore_hf(hf_before)


def _restore_hf(state: tuple[int, bool] | None) -> None:
    """Put transformers back as it was before the block. (Imported within it, it keeps the
    block's settings: huggingface_hub reads its variable once, at import.)"""
    if state is None or sys.modules.get("transformers") is None:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity(state[0])
    if state[1]:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()


def format_seconds(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Progress of a loop of ``total`` units (None: unknown) named ``desc``.

    ``update(n, figures)`` advances by ``n`` units and shows ``figures`` (name -> value, e.g.
    loss and validation NDCG@10) with the elapsed time and an estimate of the time left (an
    upper bound when the loop may stop early); ``set(figures)`` shows figures within a unit.
    On a terminal this is a tqdm bar; otherwise a line ``desc: epoch 3/50, loss 0.51, ...,
    elapsed 0:04, eta 1:02`` is written after the first unit, then at most every ``interval``
    seconds, and for the last state on ``close``.
    Nothing is shown when ``enabled`` is False or the process is quiet.
    """

    def __init__(
        self,
        desc: str,
        total: int | None,
        *,
        unit: str = "epoch",
        enabled: bool = True,
        interval: float = LINE_INTERVAL_S,
        file: TextIO | None = None,
    ) -> None:
        self.desc, self.total, self.unit, self.interval = desc, total, unit, interval
        self.file = file if file is not None else sys.stderr
        self.enabled = enabled and not is_quiet()
        self.done = 0
        self.figures: dict[str, object] = {}
        self._start = time.perf_counter()
        self._last_line: float | None = None
        self._shown = 0  # units done when the last line was written
        self._bar: Any = None
        if self.enabled and _isatty(self.file):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.file, dynamic_ncols=True)

    def update(self, n: int = 1, figures: Mapping[str, object] | None = None) -> None:
        """Advance by ``n`` units and show ``figures`` beside the count."""
        self.done += n
        if figures is not None:
            self.figures = dict(figures)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix({k: str(v) for k, v in self.figures.items()}, refresh=False)
            self._bar.update(n)
            return
        now = time.perf_counter()
        if (
            self._last_line is None
            or now - self._last_line >= self.interval
            or (self.total is not None and self.done >= self.total)
        ):
            self._write(now)

    def set(self, figures: Mapping[str, object]) -> None:
        """Show new ``figures`` within a unit (a running loss): a long epoch is not silent."""
        self.figures = dict(figures)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix({k: str(v) for k, v in self.figures.items()})
            return
        now = time.perf_counter()
        if now - (self._start if self._last_line is None else self._last_line) >= self.interval:
            self._write(now)

    def line(self, now: float | None = None) -> str:
        """The plain progress line of the current state."""
        elapsed = (time.perf_counter() if now is None else now) - self._start
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        parts = [f"{self.unit} {count}", *(f"{k} {v}" for k, v in self.figures.items())]
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if self.total is not None and 0 < self.done < self.total:
            parts.append(f"eta {format_seconds(elapsed / self.done * (self.total - self.done))}")
        return f"{self.desc}: " + ", ".join(parts)

    def _write(self, now: float) -> None:
        print(self.line(now), file=self.file, flush=True)
        self._last_line, self._shown = now, self.done

    def close(self) -> None:
        """End the bar, or write the last state if its line is not out yet."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.done and self._shown != self.done:
            self._write(time.perf_counter())
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _isatty(file: TextIO) -> bool:
    """A terminal a bar can be drawn on (a pseudo-terminal of width 0 gets plain lines)."""
    try:
        if not file.isatty():
            return False
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    try:
        return os.get_terminal_size(file.fileno()).columns > 0
    except (AttributeError, OSError, ValueError):  # a stand-in without a file descriptor
        return True


__all__ = [
    "ENV_QUIET",
    "ENV_VERBOSE",
    "LINE_INTERVAL_S",
    "Progress",
    "configure",
    "format_seconds",
    "is_quiet",
    "is_verbose",
    "output",
    "quiet",
    "silence_third_party",
]
