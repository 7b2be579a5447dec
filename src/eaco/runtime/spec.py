"""Job specifications (YAML), validated with pydantic; an error names the field.

A spec says what to run and what the scheduler needs to know about it; :mod:`eaco.runtime.jobs`
turns it into the :class:`eaco.model.job.Job` that policies see.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eaco.errors import InputError
from eaco.model.gpu import gpu_type as lookup_gpu_type

DEFAULT_JOB_TYPE = "resnet18"
DEFAULT_EXPECTED_EPOCH_S = 60.0


class JobSpec(BaseModel):
    """One training job as a user submits it. Times are seconds; memory is GB per GPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    command: list[str] = Field(min_length=1)
    working_dir: str = "."
    env: dict[str, str] = Field(default_factory=dict)
    num_gpus: int = Field(default=1, ge=1)
    gpu_type: str | None = None
    memory_gb: float | None = Field(default=None, gt=0)
    epochs: int = Field(ge=1)
    expected_epoch_s: float | None = Field(default=None, gt=0)
    gpu_util: float | None = Field(default=None, ge=0, le=1)
    job_type: str = DEFAULT_JOB_TYPE
    deadline_s: float | None = Field(default=None, gt=0)
    slack: float | None = Field(default=None, ge=0)
    priority: int = Field(default=0, ge=0)
    checkpoint_dir: str | None = None

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        if isinstance(value, str):
            return shlex.split(value)
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value

    @field_validator("gpu_type")
    @classmethod
    def _known_gpu_type(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return lookup_gpu_type(value).name
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None

    @model_validator(mode="after")
    def _deadline_or_slack(self) -> "JobSpec":
        if self.deadline_s is not None and self.slack is not None:
            raise ValueError("give either deadline_s or slack, not both")
        if self.slack is not None and self.expected_epoch_s is None:
            raise ValueError("slack needs expected_epoch_s (the deadline is (1 + slack) x epochs x expected_epoch_s)")
        return self

    def relative_deadline_s(self) -> float | None:
        """Seconds after submission by which the job should finish; None = no SLO."""
        if self.deadline_s is not None:
            return self.deadline_s
        if self.slack is not None and self.expected_epoch_s is not None:
            return (1.0 + self.slack) * self.epochs * self.expected_epoch_s
        return None

    def deadline_after(self, submit_s: float) -> float | None:
        """The job's deadline for a job submitted at ``submit_s`` (same clock); None = no SLO."""
        relative = self.relative_deadline_s()
        return None if relative is None else submit_s + relative


def _field_of(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ())]
    return ".".join(loc) if loc else "(spec)"


def spec_from_mapping(data: Any, source: str = "<spec>", base_dir: Path | None = None) -> JobSpec:
    """Validate a parsed spec. A relative ``working_dir`` / ``checkpoint_dir`` is taken relative
    to ``base_dir`` (the spec file's folder). Raise :class:`InputError` naming the field."""
    if not isinstance(data, dict):
        raise InputError(source, f"expected a mapping of fields, got {type(data).__name__}")
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        field = _field_of(first)
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        if field == "(spec)":
            raise InputError(source, message + more) from None
        raise InputError(source, message + more, field=field) from None
    if base_dir is not None:
        updates: dict[str, str] = {}
        for name in ("working_dir", "checkpoint_dir"):
            value = getattr(spec, name)
            if value is not None and not Path(value).is_absolute():
                updates[name] = str((base_dir / value).resolve())
        if updates:
            spec = spec.model_copy(update=updates)
    return spec


def spec_from_yaml(text: str, source: str = "<spec>", base_dir: Path | None = None) -> JobSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(source, f"not valid YAML: {exc}") from None
    return spec_from_mapping(data, source, base_dir)


def load_spec(path: str | Path) -> JobSpec:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(str(p), f"cannot read the spec: {exc.strerror}") from None
    return spec_from_yaml(text, str(p), p.parent.resolve())
