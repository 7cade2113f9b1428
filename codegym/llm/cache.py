"""A persistent generation cache, safe under several processes (SQLite in WAL mode).

Key: (model id, exact prompt text, sampling parameters, seed, sample index). Re-running an
experiment with the cache returns identical text without calling the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path

from .base import Completion


def cache_dir() -> Path:
    """``$CODEGYM_CACHE``, else ``$XDG_CACHE_HOME/codegym``, else ``~/.cache/codegym``."""
    if os.environ.get("CODEGYM_CACHE"):
        return Path(os.environ["CODEGYM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "codegym"


class GenerationCache:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else cache_dir() / "generations.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connection() as db:
            db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @staticmethod
    def _digest(key: tuple) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=repr).encode()).hexdigest()

    def get(self, key: tuple) -> Completion | None:
        row = self._connection().execute("SELECT value FROM generations WHERE key = ?", (self._digest(key),)).fetchone()
        return Completion(**json.loads(row[0])) if row else None

    def put(self, key: tuple, completion: Completion) -> None:
        value = json.dumps({**asdict(completion), "cached": False})
        self._connection().execute("INSERT OR IGNORE INTO generations (key, value) VALUES (?, ?)",
                                   (self._digest(key), value))

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM generations").fetchone()[0]
