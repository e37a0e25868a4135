"""The sqlite response cache of :class:`regen_bench.llm.LLMClient`.

One row per finished, successful call, committed before the call's result is handed back, so a
long job stopped at any point (crash, Ctrl-C) keeps everything it finished and a rerun skips it.
sqlite (standard library) gives atomic commits and safe sharing between processes for free;
WAL mode lets readers and one writer work at the same time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from regen_bench.llm.types import LLMResponse

SCHEMA_VERSION = 1

_CREATE = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    response_model TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class CacheError(ValueError):
    """The cache file exists but is not a regen-bench LLM cache."""


class ResponseCache:
    """A thread-safe key -> response store in one sqlite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_CREATE)
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            row = self._db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            elif row[0] != str(SCHEMA_VERSION):
                raise CacheError(
                    f"{self.path}: LLM cache schema version {row[0]}, "
                    f"this harness writes version {SCHEMA_VERSION}; use a new cache file"
                )
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"{self.path}: not a regen-bench LLM cache (sqlite): {exc}") from None

    def get(self, key: str) -> LLMResponse | None:
        """The stored response for ``key`` (marked ``cached``), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, latency_s, response_model "
                "FROM responses WHERE key=?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        text, prompt_tokens, completion_tokens, latency_s, model = row
        return LLMResponse(
            text, prompt_tokens, completion_tokens, latency_s, cached=True, model=model
        )

    def put(
        self, key: str, *, backend: str, model: str, request: dict[str, Any], response: LLMResponse
    ) -> None:
        """Store (and commit) one successful response."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    key,
                    backend,
                    model,
                    json.dumps(request, sort_keys=True, ensure_ascii=False),
                    response.text,
                    int(response.prompt_tokens),
                    int(response.completion_tokens),
                    float(response.latency_s),
                    response.model,
                    time.time(),
                ),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
