"""The spec's rule table, Python side: each rule's predicate refuses its breaking spec and accepts its
satisfying one, `ftjob plan`'s planner gives the rule's own message, and the CRD carries every rule's CEL
where the table attaches it. (The CEL itself runs on the real API server: tests/integration/test_admission.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from finetune_operator.api.crd import build_crd
from finetune_operator.api.rules import SPEC_RULES, SpecRule, check_spec, violations
from finetune_operator.api.spec import FineTuneJobSpec
from finetune_operator.errors import SpecError
from finetune_operator.planning import default_catalog, make_plan, model_info_from_parameters
from finetune_operator.planning.config import PlannerConfig
from finetune_training.plan import Method
from finetune_training.profiles import PROFILES
from tests.spec_rule_cases import CASES, body, unchecked

RULES = {rule.name: rule for rule in SPEC_RULES}


def test_every_rule_has_cases_and_a_unique_name() -> None:
    assert len(RULES) == len(SPEC_RULES)
    assert set(CASES) == set(RULES)


def _parsed(changes: dict[str, Any]) -> tuple[FineTuneJobSpec, bool]:
    """The spec, and whether pydantic's own field constraints accepted it."""
    try:
        return FineTuneJobSpec.model_validate(body(changes)), True
    except ValidationError:
        return unchecked(FineTuneJobSpec, body(changes)), False


@pytest.mark.parametrize("rule", SPEC_RULES, ids=lambda r: r.name)
def test_the_python_predicate_refuses_the_breaking_spec_and_accepts_the_other(rule: SpecRule) -> None:
    bad, good = CASES[rule.name]
    spec, _ = _parsed(bad)
    assert rule.holds(spec) is False
    assert rule in list(violations(spec))
    fine = FineTuneJobSpec.model_validate(body(good))
    assert [r.name for r in violations(fine)] == []
    check_spec(fine)


@pytest.mark.parametrize("rule", SPEC_RULES, ids=lambda r: r.name)
def test_the_planner_refuses_with_the_rules_reason_and_message(rule: SpecRule) -> None:
    """What `ftjob plan` and the operator run: the same words the API server answers with."""
    spec, parsed = _parsed(CASES[rule.name][0])
    if not parsed:  # pydantic's field constraints refuse it at parse time already, the check agrees
        with pytest.raises(SpecError) as err:
            check_spec(spec)
    else:
        with pytest.raises(SpecError) as err:
            make_plan(
                spec,
                model=model_info_from_parameters(1e9),
                dataset_rows=100,
                mean_tokens=100,
                catalog=default_catalog(),
                cluster_offers=[],
                config=PlannerConfig(),
            )
    first = next(violations(spec))
    assert (err.value.reason, err.value.message) == (first.reason, first.message)
    assert first is rule or not first.holds(spec)


def test_the_crd_carries_each_rule_where_the_table_attaches_it() -> None:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for rule in SPEC_RULES:
        node = spec
        for part in rule.at:
            node = node["items"] if part == "[]" else node["properties"][part]
        assert rule.as_cel() in node["x-kubernetes-validations"], rule.name
    carried = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            carried.extend(node.get("x-kubernetes-validations", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert len(carried) == len(SPEC_RULES), "a CEL rule on spec that is not in api.rules"


VALUES = {bool: True, int: 4, float: 0.5}


@pytest.mark.parametrize("method", list(Method))
def test_fields_another_method_owns_are_refused(method: Method) -> None:
    """Every method profile's own hyperparameters have a rule that refuses them on other methods."""
    for other in PROFILES.values():
        if other.method == method:
            continue
        for name in other.own_fields:
            kind = FineTuneJobSpec.model_fields["hyperparameters"].annotation
            annotation = str(kind.__args__[0].model_fields[name].annotation)  # type: ignore[union-attr]
            value = next(v for t, v in VALUES.items() if t.__name__ in annotation)
            hp = {to_camel(name): value}
            spec = FineTuneJobSpec.model_validate(body({"method": method.value, "hyperparameters": hp}))
            broken = [r for r in violations(spec) if r.reason == "HyperparametersInvalid"]
            assert broken, f"no rule refuses `{to_camel(name)}` ({other.method.value} only) on {method.value}"
