"""What becomes of a job when one of its attempts ends: the runtime's rules, in one pure function.

The engine gathers the facts (:class:`AttemptEnd`: exit code, what the job reported, whether it
was being stopped or shared its GPUs) and applies the :class:`ExitVerdict` it gets back: how the
attempt is recorded, the job's next state and why. In order:

1. cancelled by the user: *cancelled*, whatever the exit;
2. exit 0, or a failure code after the job's ``end`` record in this attempt (training finished,
   then a crash on the way out): *finished* (running it again would run it twice);
3. exit 75 (:data:`~eaco.runtime.control.EXIT_STOPPED`), or a failure code after its
   ``stopped`` record in this attempt (a launcher such as torchrun turns 75 into 1): *stopped*,
   queued to resume from its checkpoint; so is an attempt being stopped (an undo, a move) whose
   process was lost;
4. anything else on the job's ``max_attempts``-th attempt: *failed*;
5. a crash or out-of-memory while co-located: queued to run exclusively from now on;
6. lost (no exit code: its node or process vanished): queued to resume from its checkpoint;
7. a crash or out-of-memory alone: *failed*.
"""

from __future__ import annotations

from dataclasses import dataclass

from eaco.runtime.control import EXIT_STOPPED

MAX_ATTEMPTS = 5  # a job lost or crashed this many times fails
RECORD_SLACK_S = 1.0  # a record this much older than the attempt's start still counts as its own


@dataclass(frozen=True, slots=True)
class AttemptEnd:
    """The facts about an attempt that ended."""

    exit_code: int | None  # None: lost (no exit code)
    attempt: int  # its number (1 = the job's first)
    start_unix: float  # when it started
    cancel_requested: bool = False
    stopping: bool = False  # the runtime had asked it to stop at an epoch end (undo, move)
    colocated: bool = False  # it shared a GPU at some point
    exclusive_only: bool = False  # the job already runs exclusively after a crash
    ended_record_s: float | None = None  # time of the job's last "end" record, if any
    stopped_record_s: float | None = None  # time of the job's last "stopped" record, if any
    log_mentions_oom: bool = False  # the tail of its log says it ran out of memory
    detail: str = ""  # why it was lost, when it was
    max_attempts: int = MAX_ATTEMPTS

    def _in_attempt(self, record_s: float | None) -> bool:
        return record_s is not None and record_s >= self.start_unix - RECORD_SLACK_S


@dataclass(frozen=True, slots=True)
class ExitVerdict:
    """``outcome``: how the attempt is recorded (finished, stopped, lost, crashed, oom,
    cancelled), beside its real exit code; ``new_state``: the job's next state (queued,
    finished, failed, cancelled); ``exclusive_only``: the job runs exclusively from now on;
    ``stop_reported``: a failure code taken as a stop because the job reported one (worth an
    event of its own)."""

    outcome: str
    new_state: str
    reason: str | None = None
    exclusive_only: bool = False
    stop_reported: bool = False

    @property
    def requeued(self) -> bool:
        return self.new_state == "queued"


def judge_exit(end: AttemptEnd) -> ExitVerdict:
    """The rules of the module docstring, applied to one attempt's end."""
    code = end.exit_code
    if end.cancel_requested:
        return ExitVerdict("cancelled", "cancelled", "cancelled by user")
    failure = code not in (0, None, EXIT_STOPPED)
    if code == 0:
        return ExitVerdict("finished", "finished")
    if failure and end._in_attempt(end.ended_record_s):
        return ExitVerdict("finished", "finished",
                           f"training finished (its 'end' record), then the process exited with code {code}")
    stop_reported = failure and end._in_attempt(end.stopped_record_s)
    if code == EXIT_STOPPED or stop_reported:
        return ExitVerdict("stopped", "queued", stop_reported=stop_reported)
    if code is None:
        outcome = "lost"
        if end.stopping:  # stopped one way or another: it resumes from its checkpoint
            return ExitVerdict(outcome, "queued")
    else:
        outcome = "oom" if end.log_mentions_oom else "crashed"
    if end.attempt >= end.max_attempts:
        return ExitVerdict(outcome, "failed", f"{outcome} on attempt {end.attempt} of {end.max_attempts}")
    if outcome in ("crashed", "oom") and end.colocated and not end.exclusive_only:
        return ExitVerdict(outcome, "queued", f"{outcome} while co-located; requeued to run exclusively",
                           exclusive_only=True)
    if outcome == "lost":
        why = f" ({end.detail})" if end.detail else ""
        return ExitVerdict(outcome, "queued", f"process lost{why}; requeued to resume from its checkpoint")
    return ExitVerdict(outcome, "failed", f"{outcome} (exit code {code})")
