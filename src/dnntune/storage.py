"""Storage URL (or None) to an Optuna storage, with passwords kept out of messages."""

from __future__ import annotations

import re
from pathlib import Path

from optuna.storages import BaseStorage, RDBStorage

from dnntune.exceptions import StorageError

__all__ = ["default_storage_url", "open_storage", "redact"]


def redact(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return re.sub(r"(//[^:/@]+:)[^@/]*@", r"\1***@", url)


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def open_storage(url: str) -> BaseStorage:
    """Open an RDB storage (SQLite, PostgreSQL, MySQL) or a journal file (``journal:PATH``)."""
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    if "://" not in url:
        raise StorageError(
            f"--storage {redact(url)!r} is not a storage URL; use e.g. sqlite:///study.db or "
            "postgresql://user@host/db"
        )
    engine_kwargs: dict = {}
    if url.startswith("sqlite"):
        # Wait for a lock instead of failing at once when several processes share the file.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(
            f"cannot open storage {redact(url)!r}: {redact(reason)}; check the URL, that the "
            "server is running and that its driver is installed"
        ) from None
