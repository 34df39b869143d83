"""Which process runs a trial, and what to do with trials whose process is gone.

A process killed outright (SIGKILL, the kernel's out-of-memory killer, a power cut) cannot mark
its trial failed: the trial stays RUNNING in the storage. Each trial therefore records its
owner (``host:pid``) as it starts, and a run that opens the study ends the RUNNING trials whose
owner was a process of this machine that no longer exists: complete when the trial's model was
saved (its folds were all scored), else failed with its parameters queued again, once. Owners
on other machines are left to the heartbeat of workers' RDB storages.

A process that takes a queued (WAITING) trial first writes a claim under its own key, so a
trial taken by a process killed before it recorded itself as owner is still known: an
orphan when every process of this machine that claimed it is gone.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["OWNER_ATTR", "Orphans", "claim_key", "end_orphans", "owner", "record_owner"]

OWNER_ATTR = "worker"
RETRY_ATTR = "retry_of"
CLAIM_PREFIX = "dnntune:claim:"


def owner() -> str:
    """This process, as ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_key() -> str:
    """The system attribute by which this process claims a queued trial it is about to take."""
    return CLAIM_PREFIX + owner()


def record_owner(trial: optuna.trial.Trial) -> None:
    """Record this process as the trial's owner, unless the storage did as it made the trial
    (RDB storages opened by ``dnntune.storage``)."""
    if OWNER_ATTR not in trial.user_attrs:
        trial.set_user_attr(OWNER_ATTR, owner())


def _is_orphan(trial: FrozenTrial, host: str) -> bool:
    """Whether the process that runs ``trial`` was one of this machine and is gone: its
    recorded owner, or, before the owner was recorded, every process that claimed it."""
    recorded = trial.user_attrs.get(OWNER_ATTR)
    if recorded is not None:
        return _gone(str(recorded), host)
    claims = [k[len(CLAIM_PREFIX) :] for k in trial.system_attrs if k.startswith(CLAIM_PREFIX)]
    return bool(claims) and all(_gone(claim, host) for claim in claims)


def _gone(recorded: str, host: str) -> bool:
    """Whether ``host:pid`` names a process of ``host`` (this machine) that no longer exists."""
    where, _, pid = recorded.rpartition(":")
    if where != host or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a live process of another user
        return False
    return False


def end_orphans(
    study: optuna.Study, saved: tuple[int, float] | None = None, *, every_running: bool = False
) -> Orphans:
    """End the RUNNING trials whose process on this machine is gone (with ``every_running``,
    every RUNNING trial: a storage only this run writes, such as the journal file of a
    coordinator about to start its workers, which has no heartbeat).

    ``saved`` is the delivered model's (trial number, value): a trial is saved once all its
    folds are scored, before the storage hears of it, so that trial is told complete with that
    value. The others are failed and their parameters queued again (a trial that was itself
    such a retry is not queued a second time, so a configuration that kills its process cannot
    loop)."""
    host = socket.gethostname()
    ended = Orphans()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not every_running and not _is_orphan(trial, host):
            continue
        with contextlib.suppress(RuntimeError, ValueError):  # finished or failed meanwhile
            if saved is not None and saved[0] == trial.number:
                study.tell(trial.number, saved[1])
                ended.completed.append(trial.number)
                continue
            study.tell(trial.number, state=TrialState.FAIL)
            ended.failed.append(trial.number)
            if trial.params and RETRY_ATTR not in trial.user_attrs:
                study.enqueue_trial(trial.params, user_attrs={RETRY_ATTR: trial.number})
    return ended


@dataclass
class Orphans:
    """The numbers of the orphaned trials told complete (their model was saved) and failed."""

    completed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    def note(self) -> str | None:
        parts = []
        if self.completed:
            parts.append(f"completed from its saved model ({_trials(self.completed)})")
        if self.failed:
            parts.append(f"marked failed and queued again ({_trials(self.failed)})")
        if not parts:
            return None
        count = len(self.completed) + len(self.failed)
        return f"{count} trial(s) left running by a process that died were " + "; ".join(parts)


def _trials(numbers: list[int]) -> str:
    return "trial " + ", ".join(str(n) for n in numbers)
