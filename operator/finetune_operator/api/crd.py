"""Generate the FineTuneJob CRD from the pydantic models: `python -m finetune_operator.api.crd crds/`.

The OpenAPI schema is the models' JSON schema made structural (refs inlined, optional unions flattened,
draft-2020 keywords rewritten for OpenAPI v3.0), plus CEL rules for what a schema cannot say (from the table in
`api.rules`, which the planner runs in Python too).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from finetune_operator import GROUP, KIND, PLURAL, VERSION
from finetune_operator.api.rules import SPEC_RULES
from finetune_operator.api.spec import FineTuneJobSpec
from finetune_operator.api.status import FineTuneJobStatus

CRD_FILE = f"{GROUP}_{PLURAL}.yaml"

# Fields defining the training: immutable once the job was submitted (suspend and budget may change).
IMMUTABLE_AFTER_SUBMIT = (
    "model", "dataset", "method", "peft", "lora", "hyperparameters", "rewards", "evaluation", "backend",
    "hardware", "output", "tokenSecretRef",
)  # fmt: skip

# CEL replaces these patterns with a message that says what to write.
PATTERNS_REPLACED_BY_CEL: set[tuple[str, ...]] = {
    ("output", "repo"),
    ("output", "ggufRepo"),
    ("budget", "timeout"),
}


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """Resolve `$ref`s and make the schema structural for the Kubernetes API server."""
    if isinstance(schema, list):
        return [_inline(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = copy.deepcopy(defs[schema["$ref"].split("/")[-1]])
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _inline({**target, **rest}, defs)
    out = {k: _inline(v, defs) for k, v in schema.items() if k not in ("title", "$defs")}
    if "anyOf" in out:
        options = [o for o in out.pop("anyOf") if o.get("type") != "null"]
        if len(options) == 1:
            out = {**options[0], **out}
        elif {o.get("type") for o in options} == {"string", "integer"}:
            out["x-kubernetes-int-or-string"] = True
        else:  # other unions have no structural form: the pydantic model checks them
            out["x-kubernetes-preserve-unknown-fields"] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, name in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in out and not isinstance(out[bound], bool):
            out[name] = out[bound]
            out[bound] = True
    if out.get("default") is None:
        out.pop("default", None)
    if out.get("additionalProperties") is False:
        out.pop("additionalProperties")  # not structural; unknown fields are pruned (and refused by kubectl)
    if out.get("additionalProperties") is True:  # dict[str, Any]
        out.pop("additionalProperties")
        out["x-kubernetes-preserve-unknown-fields"] = True
    extra = out.get("additionalProperties")
    if (
        out.get("type") == "object"
        and isinstance(extra, dict)
        and extra.get("x-kubernetes-preserve-unknown-fields")
    ):
        out.pop("additionalProperties")
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _structural(model: type, mode: str) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode=mode)  # type: ignore[attr-defined]
    return _inline(raw, raw.get("$defs", {}))


def _at(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = schema
    for part in path:
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def spec_schema() -> dict[str, Any]:
    """The structural OpenAPI schema of `spec`, with CEL rules."""
    schema = _structural(FineTuneJobSpec, "validation")
    for path in PATTERNS_REPLACED_BY_CEL:
        _at(schema, path).pop("pattern", None)
    for rule in SPEC_RULES:  # in table order, each on the node it is attached to
        _at(schema, rule.at).setdefault("x-kubernetes-validations", []).append(rule.as_cel())
    return schema


def status_schema() -> dict[str, Any]:
    """The structural OpenAPI schema of `status`."""
    return _structural(FineTuneJobStatus, "serialization")


def immutability_rules() -> list[dict[str, str]]:
    """One root-level transition rule: training-defining fields are frozen once a backend run exists.

    One rule, not one per field: a root rule runs on every write to the object (each status write included),
    and twelve of them cost about a tenth of the API server's CPU while a thousand jobs were submitted. Its
    message names the frozen fields (a message computed per changed field is beyond CEL's cost budget).
    """
    submitted = "has(oldSelf.status) && has(oldSelf.status.backendRef)"
    same = " && ".join(
        f"((has(self.spec.{field}) == has(oldSelf.spec.{field})) && "
        f"(!has(self.spec.{field}) || self.spec.{field} == oldSelf.spec.{field}))"
        for field in IMMUTABLE_AFTER_SUBMIT
    )
    frozen = ", ".join(f"`spec.{field}`" for field in IMMUTABLE_AFTER_SUBMIT)
    return [
        {
            "rule": f"!({submitted}) || ({same})",
            "message": f"the training fields ({frozen}) cannot change once the job was submitted (only `suspend` "
            "and `budget` can): create a new FineTuneJob, or delete and re-apply this one",
            "fieldPath": ".spec",
            "reason": "FieldValueForbidden",
        }
    ]


PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Method", "type": "string", "jsonPath": ".spec.method"},
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
    {"name": "Hardware", "type": "string", "jsonPath": ".status.plan.target"},
    {"name": "Progress", "type": "string", "jsonPath": ".status.progress.percent"},
    {"name": "Loss", "type": "number", "jsonPath": ".status.progress.loss"},
    {
        "name": "Cost",
        "type": "number",
        "jsonPath": ".status.cost.actualUSD",
        "description": "USD spent so far",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Estimate",
        "type": "number",
        "jsonPath": ".status.plan.estimatedCostUSD",
        "description": "USD the plan estimates",
        "priority": 1,
    },
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition for FineTuneJob."""
    root = {
        "type": "object",
        "description": "A fine-tuning run of an LLM: dataset validation, hardware planning, training with TRL "
        "(SFT, DPO, GRPO, KTO) and publishing to the Hugging Face Hub.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version: finetune.dev/v1alpha1."},
            "kind": {"type": "string", "description": "FineTuneJob."},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        "x-kubernetes-validations": immutability_rules(),
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["ftj"],
                "categories": ["finetune"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render() -> str:
    """The CRD as YAML, with a header saying where it comes from."""
    header = (
        "# Generated by `make crds` from operator/finetune_operator/api (pydantic models); do not edit.\n"
    )
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=120)


def main(argv: list[str]) -> int:
    """Write the CRD into each folder given (default `crds/`)."""
    for folder in argv or ["crds"]:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / CRD_FILE).write_text(render())
        print(f"wrote {Path(folder) / CRD_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
