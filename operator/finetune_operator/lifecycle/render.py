"""Render the training plan (the contract with the runtime) from a FineTuneJob and its hardware plan."""

from __future__ import annotations

import yaml

from finetune_operator.api.resource import FineTuneJob
from finetune_operator.api.status import PlanSummary
from finetune_operator.cluster.identity import short_uid
from finetune_operator.config import OperatorConfig
from finetune_operator.planning.hyperparams import resolve_hyperparameters
from finetune_training.plan import (
    JobIdentity,
    LoraSettings,
    PlanOutput,
    Resources,
    Tracking,
    TrainingPlan,
)

# libyaml's emitter where PyYAML was built with it (the same YAML, a third of the time: one plan per submission).
SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def run_name(job: FineTuneJob, attempt: int) -> str:
    """trackio run name: unique per attempt (trackio appends to a run that has the same name)."""
    return f"{job.metadata.name}-{short_uid(job.metadata.uid)}-a{attempt}"


def render_plan(job: FineTuneJob, plan: PlanSummary, config: OperatorConfig, attempt: int) -> TrainingPlan:
    """The TrainingPlan for this job's next backend run."""
    spec = job.spec
    out = spec.output
    manifest = {
        "apiVersion": job.api_version,
        "kind": job.kind,
        "metadata": {"name": job.metadata.name, "namespace": job.metadata.namespace},
        "spec": spec.wire(),
    }
    return TrainingPlan(
        job=JobIdentity(
            namespace=job.metadata.namespace, name=job.metadata.name, uid=job.metadata.uid, attempt=attempt
        ),
        model=spec.model.name,
        model_revision=spec.model.revision,
        dataset=spec.dataset,
        method=spec.method,
        peft=plan.peft,
        lora=spec.lora or LoraSettings(),
        # A plan written without them (an older status): the method's defaults for its PEFT mode and the
        # user's settings, never the generic class defaults (SFT's learning rate for a DPO run).
        hyperparameters=plan.hyperparameters
        or resolve_hyperparameters(spec.hyperparameters, spec.method, plan.peft),
        rewards=spec.rewards or [],
        evaluation=spec.evaluation,
        output=PlanOutput(
            repo=out.repo if out else None,
            private=out.private if out else True,
            merge_adapter=out.merge_adapter if out else False,
            gguf=list(out.gguf or []) if out else [],
            gguf_repo=spec.gguf_repo(),
        ),
        tracking=Tracking(
            project=f"{job.metadata.namespace}-{job.metadata.name}",
            run_name=run_name(job, attempt),
            space_id=config.trackio_space,
        ),
        resources=Resources(
            gpu_count=plan.gpu_count, gpu_product=plan.gpu_product, flavor=plan.flavor, nodes=plan.nodes
        ),
        finetune_job_yaml=yaml.dump(manifest, Dumper=SAFE_DUMPER, sort_keys=False),
    )
