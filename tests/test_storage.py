"""Studies live in real databases: SQLite by default, PostgreSQL when one is reachable.

The PostgreSQL tests skip without ``DNNTUNE_TEST_POSTGRES_URL``, except in CI, where
``.ci/run`` sets it and ``DNNTUNE_REQUIRE_POSTGRES=1`` turns a skip into a failure.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState

import dnntune
from dnntune.exceptions import StorageError
from dnntune.storage import open_storage, redact
from dnntune.testing import postgres_url, write_space


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://me:s3cret@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert redact("sqlite:///a.db") == "sqlite:///a.db"


def test_bad_storage_url_is_a_clean_error() -> None:
    with pytest.raises(StorageError, match="is not a storage URL"):
        open_storage("not-a-url")
    with pytest.raises(
        StorageError, match=r"cannot open storage 'postgresql://u:\*\*\*@127.0.0.1:1/x'"
    ):
        open_storage("postgresql://u:pw@127.0.0.1:1/x")


def test_a_worker_killed_before_its_first_heartbeat_leaves_no_running_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Optuna's heartbeat thread starts only after ask(); a trial that never beat is never
    # failed by Optuna. dnntune records the first beat with the trial itself.
    monkeypatch.setenv("DNNTUNE_HEARTBEAT_INTERVAL", "1")
    url = f"sqlite:///{tmp_path / 'beat.db'}"
    dead = optuna.create_study(study_name="beat", storage=open_storage(url, heartbeat=True))
    dead.enqueue_trial({"x": 1.0})
    taken = dead.ask()  # a waiting trial taken, then its worker "dies"
    created = dead.ask()  # a new trial created, then its worker "dies"
    time.sleep(4.5)  # past the grace period (3 s for a 1 s interval; SQLite keeps seconds)
    alive = optuna.load_study(study_name="beat", storage=open_storage(url, heartbeat=True))
    alive.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=1)
    states = {t.number: t.state for t in alive.get_trials(deepcopy=False)}
    assert states[taken.number] is TrialState.FAIL
    assert states[created.number] is TrialState.FAIL
    retried = [t for t in alive.get_trials() if t.system_attrs.get("failed_trial") is not None]
    assert len(retried) == 2  # both go back to the queue with their parameters


@pytest.fixture
def pg_url() -> str:
    url = postgres_url()
    if not url:
        if os.environ.get("DNNTUNE_REQUIRE_POSTGRES"):
            pytest.fail("DNNTUNE_REQUIRE_POSTGRES is set but DNNTUNE_TEST_POSTGRES_URL is not")
        pytest.skip("set DNNTUNE_TEST_POSTGRES_URL to run the PostgreSQL tests")
    try:
        open_storage(url)
    except StorageError as exc:
        if os.environ.get("DNNTUNE_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    return url


@pytest.mark.postgres
@pytest.mark.parametrize("driver", ["", "+psycopg2"])
def test_study_on_postgres_resumes(
    pg_url: str, tmp_path: Path, credit_g: Path, driver: str
) -> None:
    """A plain postgresql:// URL (psycopg 3, SQLAlchemy's default) and the psycopg2 form."""
    scheme, rest = pg_url.split("://", 1)
    pg_url = f"{scheme.split('+')[0]}{driver}://{rest}"
    name = f"dnntune-test-{uuid.uuid4().hex[:8]}"
    common = dict(
        data=str(credit_g),
        target=("target",),
        folds=3,
        max_folds=1,
        study=name,
        storage=pg_url,
        space=str(write_space(tmp_path / "s.yaml")),
        output_dir=str(tmp_path / "run"),
    )
    try:
        dnntune.tune(trials=2, **common)
        result = dnntune.tune(trials=4, **common)
        assert [t.number for t in result.study.trials] == [0, 1, 2, 3]
        stored = optuna.load_study(study_name=name, storage=pg_url)
        assert stored.user_attrs["dnntune_config"]["folds"] == 3
        assert isinstance(stored.best_params["optimizer"], str)
        assert not (tmp_path / "run" / "study.db").exists()
    finally:
        optuna.delete_study(study_name=name, storage=pg_url)


def test_optuna_internals_are_used_in_one_place_that_still_matches_optuna() -> None:
    """storage.py records a trial's first heartbeat by overriding one private method of
    RDBStorage; this fails when Optuna renames it or changes its arguments, and when any other
    module reaches into Optuna's internals."""
    import inspect
    import re

    params = list(inspect.signature(RDBStorage._create_new_trial).parameters)
    assert params == ["self", "study_id", "template_trial"]
    private = re.compile(r"\._storage\b|\._trial_id\b|_create_new_trial|optuna\.terminator")
    root = Path(dnntune.__file__).parent
    users = {p.name for p in root.rglob("*.py") if private.search(p.read_text())}
    assert users == {"storage.py"}


def test_a_url_whose_driver_is_missing_names_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(StorageError) as missing:
        open_storage("postgresql+pg8000://me:secret@127.0.0.1/x")
    assert str(missing.value) == (
        "cannot open storage 'postgresql+pg8000://me:***@127.0.0.1/x': the postgresql+pg8000 "
        "driver is not installed; pip install 'pg8000'"
    )
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg 3 were not installed
    with pytest.raises(
        StorageError, match=r"driver is not installed; pip install 'psycopg\[binary\]'$"
    ):
        open_storage("postgresql://me@127.0.0.1/x")
