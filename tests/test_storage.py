"""Studies live in real databases: SQLite by default, PostgreSQL when one is reachable.

The PostgreSQL tests skip without ``DNNTUNE_TEST_POSTGRES_URL``, except in CI, where
``.ci/run`` sets it and ``DNNTUNE_REQUIRE_POSTGRES=1`` turns a skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import optuna
import pytest

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
def test_study_on_postgres_resumes(pg_url: str, tmp_path: Path, credit_g: Path) -> None:
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
