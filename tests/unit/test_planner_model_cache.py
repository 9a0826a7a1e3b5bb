"""The base model's size is asked of the Hub once per model, revision and token, not once per job."""

from __future__ import annotations

from typing import Any

import pytest

import finetune_operator.planner_service as service
from finetune_operator.api.spec import FineTuneJobSpec
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import RetryLater
from finetune_operator.planning.model_info import ModelInfo, model_info_from_parameters


def spec(model: str = "org/m", revision: str | None = None) -> FineTuneJobSpec:
    return FineTuneJobSpec.model_validate(
        {"model": {"name": model, "revision": revision}, "dataset": {"name": "org/d"}, "method": "SFT"}
    )


def test_model_info_is_remembered_per_model_revision_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[Any, ...]] = []

    def load(name: str, *, revision: str | None, token: str | None, endpoint: str | None) -> ModelInfo:
        asked.append((name, revision, token))
        if name == "org/down":
            raise RetryLater("the Hub is down")
        return model_info_from_parameters(1e9)

    monkeypatch.setattr(service, "load_model_info", load)
    clock = [1000.0]
    monkeypatch.setattr(service.time, "monotonic", lambda: clock[0])
    planner = service.PlannerService(OperatorConfig(enabled_backends=[], metrics_port=0), None)
    for _ in range(100):
        planner.model_info(spec(), "hf_a")
    assert asked == [("org/m", None, "hf_a")]
    planner.model_info(spec(), "hf_b")  # another token is answered for itself (a gated repo)
    planner.model_info(spec(revision="v2"), "hf_a")
    assert len(asked) == 3
    for _ in range(2):  # failures are not remembered
        with pytest.raises(RetryLater):
            planner.model_info(spec("org/down"), "hf_a")
    assert len(asked) == 5
    clock[0] += service.MODEL_INFO_TTL_SECONDS + 1  # a new revision of `main` is seen within the TTL
    planner.model_info(spec(), "hf_a")
    assert len(asked) == 6
