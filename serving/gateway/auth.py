"""Bearer tokens from a file (a mounted Secret), compared in constant time.

File format, one token per line: `TOKEN` (every model) or `TOKEN model_a,model_b` (allow-list).
Blank lines and lines starting with # are ignored. The file is re-read when it changes, so a
rotated Secret takes effect without a restart. Tokens never reach the logs.
"""

from __future__ import annotations

import hmac
import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    index: int  # line position, safe to log instead of the token
    models: frozenset[str] | None  # None: every model

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


class TokenStore:
    def __init__(self, path: str, recheck_seconds: float = 2.0):
        self.path = path
        self.recheck_seconds = recheck_seconds
        self._entries: list[tuple[bytes, Principal]] = []
        self._mtime = None
        self._checked = 0.0
        self._load()
        if not self._entries:
            raise ValueError(f"auth.tokens_file {path}: no tokens")

    def _load(self) -> None:
        st = os.stat(self.path)
        entries = []
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                token, _, models = line.partition(" ")
                allowed = frozenset(m.strip() for m in models.split(",") if m.strip()) or None
                entries.append((token.encode(), Principal(len(entries), allowed)))
        self._entries, self._mtime = entries, st.st_mtime_ns

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.recheck_seconds:
            return
        self._checked = now
        try:
            if os.stat(self.path).st_mtime_ns != self._mtime:
                self._load()
        except OSError:
            pass  # keep the last good tokens while a Secret is being swapped

    def authenticate(self, header: str | None) -> Principal | None:
        self._maybe_reload()
        if not header or not header[:7].lower() == "bearer ":
            return None
        presented = header[7:].strip().encode()
        found = None
        for token, principal in self._entries:  # compare with every token: no early exit
            if hmac.compare_digest(token, presented) and found is None:
                found = principal
        return found
