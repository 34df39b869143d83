"""Storage URL (or None) to an Optuna storage, with passwords kept out of messages."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from dnntune._names import first_line, setting_name
from dnntune._owners import OWNER_ATTR, claim_key, owner
from dnntune._redact import redact
from dnntune.exceptions import StorageError

__all__ = ["MEMORY", "default_storage_url", "open_storage", "redact", "storage_from_env"]


# The storage URL of a study kept in this process only (the scikit-learn estimators' default).
MEMORY = "memory:"


def storage_from_env(url: str | None) -> str | None:
    """``--storage`` when given, else ``$DNNTUNE_STORAGE`` (keeps passwords out of argv)."""
    return url or os.environ.get("DNNTUNE_STORAGE") or None


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def heartbeat_settings() -> tuple[int, int]:
    """(interval, grace period) in seconds for worker heartbeats; the environment may shorten
    them (``DNNTUNE_HEARTBEAT_INTERVAL``), as the tests do."""
    interval = int(os.environ.get("DNNTUNE_HEARTBEAT_INTERVAL", "30"))
    return interval, max(2 * interval, interval + 2)


class _OwnedRDBStorage(RDBStorage):
    """An RDB storage that records a trial's owner (this process, ``host:pid``) as the trial
    becomes RUNNING, so that the next run on this machine can end it at once if the process
    dies (``dnntune._owners``). A new trial is written with its owner in one transaction; a
    waiting trial is first claimed under this process's own key, then taken, then owned, so
    that no kill in between leaves a RUNNING trial nobody can end.

    Why a private method: Optuna wraps every RDB storage of a study in its ``_CachedStorage``,
    which makes a trial by calling the backend's ``_create_new_trial`` directly; the public
    ``create_new_trial`` is never called, and no public hook sees a trial as it is made. This
    override is the one use of Optuna's internals in dnntune, and
    ``tests/test_storage.py::test_optuna_internals_are_used_in_one_place_that_still_matches_optuna``
    fails when Optuna changes it."""

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        template = _owned(template_trial)
        trial = super()._create_new_trial(study_id, template)
        if trial.state is TrialState.RUNNING:
            self._started(trial._trial_id)
        return trial

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        if state is TrialState.RUNNING:
            try:
                self.set_trial_system_attr(trial_id, claim_key(), True)
            except RuntimeError:  # finished meanwhile: not ours to take
                return False
        changed = super().set_trial_state_values(trial_id, state, values)
        if changed and state is TrialState.RUNNING:
            self.set_trial_user_attr(trial_id, OWNER_ATTR, owner())
            self._started(trial_id)
        return changed

    def _started(self, trial_id: int) -> None:
        """A trial this process now runs (its owner is recorded)."""


def _owned(template: FrozenTrial | None) -> FrozenTrial:
    """The template of a new trial, with this process as the owner of a RUNNING one."""
    if template is None:
        now = datetime.now()
        return FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=now,
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={OWNER_ATTR: owner()},
            system_attrs={},
            intermediate_values={},
            trial_id=-1,
        )
    if template.state is TrialState.RUNNING and OWNER_ATTR not in template.user_attrs:
        template = copy.deepcopy(template)
        template.user_attrs[OWNER_ATTR] = owner()
    return template


class _BeatingRDBStorage(_OwnedRDBStorage):
    """An owned RDB storage that also records a trial's first heartbeat as it starts.

    Optuna starts the heartbeat thread only after ``study.ask()`` returns, and never fails a
    RUNNING trial that has no heartbeat at all: a worker killed in between (while a sampler
    computes its next point, say) would leave its trial RUNNING for ever.
    """

    def _started(self, trial_id: int) -> None:
        self.record_heartbeat(trial_id)


def open_storage(url: str, *, heartbeat: bool = False) -> BaseStorage:
    """Open an RDB storage (SQLite, PostgreSQL, MySQL), a journal file (``journal:PATH``), a
    journal on Redis (``redis://host:port/db``) or, for ``memory:``, a study that lives in this
    process only.

    With ``heartbeat``, an RDB storage records a heartbeat for each running trial; a trial whose
    worker stopped beating (killed) is marked failed by the next worker and retried once more
    (up to 3 times) with the same parameters.
    """
    if url == MEMORY:
        from optuna.storages import InMemoryStorage

        return InMemoryStorage()
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    if url.startswith(("redis://", "rediss://")):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalRedisBackend

        try:
            return JournalStorage(JournalRedisBackend(url))
        except Exception as exc:
            reason = first_line(exc)
            raise StorageError(
                f"cannot open storage {redact(url)!r}: {redact(reason)}; check the URL, that "
                "the Redis server is running and that the redis package is installed"
            ) from None
    if "://" not in url:
        raise StorageError(
            f"{setting_name('storage')} {redact(url)!r} is not a storage URL; use e.g. "
            "sqlite:///study.db or postgresql://user@host/db"
        )
    _check_driver(url)
    return _rdb_storage(url, heartbeat=heartbeat)


# The package to install for each database driver module SQLAlchemy imports.
_DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
}


def _check_driver(url: str) -> None:
    """Refuse, in one line naming the package to install, a URL whose driver is missing
    (``postgresql://`` is psycopg 3's, ``postgresql+psycopg2://`` psycopg2's)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        reason = first_line(exc)
        raise StorageError(f"cannot open storage {redact(url)!r}: {redact(reason)}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = (exc.name or "").split(".")[0]
        package = _DRIVER_PACKAGES.get(module, module or "its driver")
        scheme = url.split("://")[0]
        raise StorageError(
            f"cannot open storage {redact(url)!r}: the {scheme} driver is not installed; "
            f"pip install '{package}'"
        ) from None


def _rdb_storage(url: str, *, heartbeat: bool) -> RDBStorage:
    engine_kwargs: dict[str, Any]
    if url.startswith("sqlite"):
        # Wait for a lock instead of failing at once when several processes share the file.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    extra: dict[str, Any] = {}
    if heartbeat:
        import optuna.storages as storages

        interval, grace = heartbeat_settings()
        extra = {"heartbeat_interval": interval, "grace_period": grace}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9
                retry = storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
                extra["heartbeat_stale_trial_callback"] = retry
            else:
                extra["failed_trial_callback"] = storages.RetryFailedTrialCallback(max_retry=3)
    kind = _BeatingRDBStorage if heartbeat else _OwnedRDBStorage
    try:
        with warnings.catch_warnings():  # the heartbeat's arguments are marked experimental
            warnings.simplefilter("ignore", ExperimentalWarning)
            return kind(url, engine_kwargs=engine_kwargs, **extra)
    except Exception as exc:
        reason = first_line(exc)
        raise StorageError(
            f"cannot open storage {redact(url)!r}: {redact(reason)}; check the URL and that the "
            "server is running"
        ) from None
