"""The runtime's rules for an ended attempt (eaco.runtime.exit_rules), case by case."""

from __future__ import annotations

from dataclasses import replace

import pytest

from eaco.runtime.control import EXIT_STOPPED
from eaco.runtime.exit_rules import AttemptEnd, ExitVerdict, judge_exit

START = 1000.0
BASE = AttemptEnd(exit_code=1, attempt=1, start_unix=START)


def verdict(**kw: object) -> ExitVerdict:
    return judge_exit(replace(BASE, **kw))  # type: ignore[arg-type]


def test_cancel_wins_over_everything() -> None:
    for code in (0, 1, EXIT_STOPPED, None):
        v = verdict(exit_code=code, cancel_requested=True, ended_record_s=START + 5, colocated=True)
        assert (v.outcome, v.new_state, v.reason) == ("cancelled", "cancelled", "cancelled by user")


def test_clean_exit_finishes() -> None:
    v = verdict(exit_code=0, attempt=5, colocated=True)
    assert (v.outcome, v.new_state, v.reason, v.requeued) == ("finished", "finished", None, False)


def test_failure_after_its_end_record_finishes_with_the_real_code() -> None:
    v = verdict(exit_code=1, ended_record_s=START + 30, colocated=True)
    assert (v.outcome, v.new_state, v.exclusive_only) == ("finished", "finished", False)
    assert "'end' record" in (v.reason or "") and "code 1" in (v.reason or "")
    # an "end" record of an earlier attempt does not count (a second before the start does)
    assert verdict(exit_code=1, ended_record_s=START - 5).outcome == "crashed"
    assert verdict(exit_code=1, ended_record_s=START - 0.5).outcome == "finished"
    # lost (no exit code) after the end record: not known to have ended well
    assert verdict(exit_code=None, ended_record_s=START + 30).outcome == "lost"


def test_stop_code_or_a_reported_stop_requeues() -> None:
    v = verdict(exit_code=EXIT_STOPPED)
    assert (v.outcome, v.new_state, v.stop_reported, v.reason) == ("stopped", "queued", False, None)
    v = verdict(exit_code=1, stopped_record_s=START + 10)  # torchrun made a 1 of the 75
    assert (v.outcome, v.new_state, v.stop_reported) == ("stopped", "queued", True)
    assert verdict(exit_code=1, stopped_record_s=START - 10).outcome == "crashed"
    # a stop on the last allowed attempt still requeues: nothing failed
    assert verdict(exit_code=EXIT_STOPPED, attempt=5).new_state == "queued"


def test_lost_while_being_stopped_resumes_quietly_even_on_the_last_attempt() -> None:
    v = verdict(exit_code=None, stopping=True, attempt=5, detail="node gone")
    assert (v.outcome, v.new_state, v.reason) == ("lost", "queued", None)


def test_lost_while_running_is_requeued_with_why() -> None:
    v = verdict(exit_code=None, detail="node n2 is lost")
    assert (v.outcome, v.new_state) == ("lost", "queued")
    assert v.reason == "process lost (node n2 is lost); requeued to resume from its checkpoint"
    assert verdict(exit_code=None).reason == "process lost; requeued to resume from its checkpoint"


@pytest.mark.parametrize("oom, outcome", [(False, "crashed"), (True, "oom")])
def test_crash_while_colocated_runs_exclusively_next(oom: bool, outcome: str) -> None:
    v = verdict(exit_code=1, colocated=True, log_mentions_oom=oom)
    assert (v.outcome, v.new_state, v.exclusive_only) == (outcome, "queued", True)
    assert v.reason == f"{outcome} while co-located; requeued to run exclusively"
    # already exclusive after an earlier crash: this one fails it
    v = verdict(exit_code=1, colocated=True, exclusive_only=True, log_mentions_oom=oom)
    assert (v.outcome, v.new_state, v.exclusive_only) == (outcome, "failed", False)
    assert v.reason == f"{outcome} (exit code 1)"


def test_a_crash_alone_fails() -> None:
    v = verdict(exit_code=3)
    assert (v.outcome, v.new_state, v.reason) == ("crashed", "failed", "crashed (exit code 3)")


def test_the_last_attempt_fails_whatever_the_failure() -> None:
    for code, colocated, outcome in ((1, True, "crashed"), (None, False, "lost")):
        v = verdict(exit_code=code, colocated=colocated, attempt=5)
        assert (v.outcome, v.new_state, v.reason) == (outcome, "failed", f"{outcome} on attempt 5 of 5")
    assert verdict(exit_code=None, attempt=2, max_attempts=2).new_state == "failed"
    assert verdict(exit_code=None, attempt=4).new_state == "queued"
