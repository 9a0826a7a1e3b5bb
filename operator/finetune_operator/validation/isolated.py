"""The operator's dataset validation, run in a child process that ends with it.

Reading data files needs pyarrow and numpy (about 40 MB that a Python process keeps once loaded) and holds
the sampled rows; a dataset with enormous rows or a malformed file could take the operator's memory with it.
The operator therefore validates in a short-lived child (`python -m finetune_operator.validation.isolated`):
the request goes in on stdin (the token with it: never in the command line or the environment, where `ps`
shows them), the report comes back on stdout as the same JSON `ftjob validate -o json` prints, and the
domain's errors cross as themselves. The validation cache in front of it (`validation.cache`) runs one child
per distinct question, however many jobs ask it.

`ftjob validate` and the training runtime call :func:`~finetune_operator.validation.inspect_dataset`
directly.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, SecretStr, SerializationInfo, field_serializer

from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.validation.report import DatasetReport
from finetune_training.plan import DatasetSource

CHILD_TIMEOUT_SECONDS = 900.0
"""A validation reads a bounded sample (its rows, a few Parquet footers); longer than this is a stuck read."""


class ValidationRequest(BaseModel):
    """What the operator asks the child."""

    source: DatasetSource
    token: SecretStr | None = None
    methods: list[str]
    options: dict[str, Any]

    @field_serializer("token", when_used="json")
    def _token(self, token: SecretStr | None, info: SerializationInfo) -> str | None:
        """Written out in full only for the child's stdin (`context={"reveal": True}`); masked elsewhere."""
        if token is None:
            return None
        return token.get_secret_value() if (info.context or {}).get("reveal") else str(token)


class ChildError(BaseModel):
    """A domain error raised in the child, to raise again in the operator."""

    kind: Literal["SpecError", "RetryLater"]
    reason: str = ""
    message: str
    delay: float = 30.0


class ValidationAnswer(BaseModel):
    """What the child answers: a report, or the error that stopped it."""

    report: DatasetReport | None = None
    error: ChildError | None = None


def inspect_in_child(
    source: DatasetSource,
    *,
    token: str | None = None,
    methods: Sequence[str] = (),
    **options: Any,
) -> DatasetReport:
    """:func:`~finetune_operator.validation.inspect_dataset` in a child process; same arguments, same
    report, the same `SpecError` and `RetryLater`."""
    request = ValidationRequest(
        source=source,
        token=SecretStr(token) if token else None,
        methods=list(methods),
        options=options,
    )
    payload = request.model_dump_json(context={"reveal": True})
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__],
            input=payload,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RetryLater(
            f"validating dataset `{source.name}` took longer than {CHILD_TIMEOUT_SECONDS:.0f} s; trying again",
            delay=60.0,
        ) from None
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise RetryLater(
            f"validating dataset `{source.name}` stopped unexpectedly (exit code {done.returncode}: {last})",
            delay=60.0,
        )
    answer = ValidationAnswer.model_validate_json(done.stdout)
    if answer.error is not None:
        if answer.error.kind == "SpecError":
            raise SpecError(answer.error.reason, answer.error.message)
        raise RetryLater(answer.error.message, delay=answer.error.delay)
    if answer.report is None:
        raise RetryLater(f"validating dataset `{source.name}` gave no report", delay=60.0)
    return answer.report


def main() -> int:
    """The child: one request on stdin, one answer on stdout."""
    from finetune_operator.validation.inspect import inspect_dataset

    request = ValidationRequest.model_validate_json(sys.stdin.read())
    token = request.token.get_secret_value() if request.token else None
    try:
        report = inspect_dataset(request.source, token=token, methods=request.methods, **request.options)
        answer = ValidationAnswer(report=report)
    except SpecError as err:
        answer = ValidationAnswer(error=ChildError(kind="SpecError", reason=err.reason, message=err.message))
    except RetryLater as err:
        answer = ValidationAnswer(error=ChildError(kind="RetryLater", message=err.message, delay=err.delay))
    sys.stdout.write(answer.model_dump_json(by_alias=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
