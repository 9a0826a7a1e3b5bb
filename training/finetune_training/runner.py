"""The training run, as `trl/scripts/sft.py` does it: parse the plan → main() → train → save → push.

Usage: ``python -m finetune_training.runner --plan plan.json`` (or ``ftjob train``). Without ``--plan`` the
plan is read, base64-encoded JSON, from the environment variable named by ``--plan-env`` (default
``FTJOB_PLAN``), for backends that pass it that way. Every failure ends in one `error` event with a
CamelCase reason and exit code 1; the traceback goes to stderr once, before it. SIGTERM ends the current
step, saves and pushes a checkpoint, and ends in a `stopped` event and exit code 143
(:mod:`finetune_training.stop`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from finetune_training.errors import HUB_UNAVAILABLE, TrainingError
from finetune_training.events import EventKind, RuntimeEvent, emit, hold_key
from finetune_training.plan import Evaluation, TrainingPlan
from finetune_training.stop import STOP_EXIT_CODE, Stopped, StopRequest

PLAN_ENV = "FTJOB_PLAN"

log = logging.getLogger("finetune_training")


def load_plan(path: str | None, env_name: str = PLAN_ENV) -> TrainingPlan:
    """The plan from a JSON file, or from base64 JSON in the environment variable `env_name`.

    Raises
    ------
    TrainingError
        `PlanInvalid` when neither is given or the plan does not validate.
    """
    try:
        if path:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise TrainingError("PlanInvalid", f"cannot read `--plan` {path}: {exc.strerror}") from exc
        else:
            encoded = os.environ.get(env_name)
            if not encoded:
                raise TrainingError(
                    "PlanInvalid", f"pass `--plan plan.json` or set `{env_name}` (base64 JSON)"
                )
            try:
                text = base64.b64decode(encoded, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise TrainingError(
                    "PlanInvalid", f"`{env_name}` must hold base64-encoded JSON: {exc}"
                ) from exc
        return TrainingPlan.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"`{'.'.join(str(p) for p in e['loc'])}`: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise TrainingError("PlanInvalid", f"the plan is invalid: {problems}") from exc


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def train(plan: TrainingPlan, stop: StopRequest | None = None) -> dict[str, Any]:
    """Run the whole job: data, training (resuming when a checkpoint exists), saving, publishing.

    Parameters
    ----------
    plan
        The training plan.
    stop
        Set by SIGTERM (see :meth:`StopRequest.installed`); checked at each step's end.

    Returns
    -------
    dict
        Final metrics and the published URLs (`model`, `gguf`).

    Raises
    ------
    Stopped
        After a stop request: the checkpoint is saved and pushed, and the `stopped` event emitted.
    """
    # Heavy imports here, so `--help` and plan errors stay fast.
    import torch
    from accelerate import PartialState
    from huggingface_hub import HfApi
    from transformers.trainer_callback import PrinterCallback

    from finetune_training.checkpoints import (
        CheckpointPushCallback,
        HubCheckpoints,
        StopOnSignalCallback,
        resume_checkpoint,
    )
    from finetune_training.data import evaluation_split, prepare_dataset
    from finetune_training.methods import build_trainer, load_tokenizer
    from finetune_training.progress import EventsCallback, data_rows, trackio_location
    from finetune_training.publish import publish

    stop = stop or StopRequest()

    token = os.environ.get("HF_TOKEN") or None
    work = Path(plan.output.local_dir)
    checkpoints_dir = work / "checkpoints"
    # The process group as the Trainer will see it: on a machine without CUDA, `cpu=True` is what makes a
    # torchrun world of several processes a gloo group (the first PartialState fixes it for the process).
    state = PartialState(cpu=not torch.cuda.is_available())

    check_world_size(plan, state.num_processes)
    api = HfApi(token=token) if plan.output.repo else None
    hub = None
    if api is not None and plan.output.repo and plan.output.push_checkpoints:
        hub = HubCheckpoints(api, plan.output.repo, plan.job.uid, private=plan.output.private)

    dataset, eval_dataset = evaluation_split(
        prepare_dataset(plan.dataset, plan.method, plan.rewards, token), plan, token
    )
    with state.main_process_first():
        resume_dir, resumed_step = resume_checkpoint(checkpoints_dir, hub)
    if resume_dir is not None:
        log.info("resuming from %s (step %s)", resume_dir, resumed_step)

    trackio_url = trackio_location(plan.tracking)
    tokenizer = load_tokenizer(plan)
    pushes = CheckpointPushCallback(hub)
    events = EventsCallback(resumed_step, trackio_url)
    trainer = build_trainer(
        plan,
        dataset,
        checkpoints_dir,
        callbacks=[events, pushes, StopOnSignalCallback(stop)],
        tokenizer=tokenizer,
        eval_dataset=eval_dataset,
    )
    events.rows = data_rows(len(dataset), trainer)
    # Our events replace the Trainer's printed log dicts on stdout.
    trainer.remove_callback(PrinterCallback)
    if stop.agreed(state.device):
        # Asked before the first step: the checkpoint resumed from (if any) already holds everything.
        _stopped(trainer, resumed_step or 0, None)
    baseline = None
    if eval_dataset is not None and resume_dir is None:
        baseline = _numbers(trainer.evaluate())  # the base model's score: what training must beat
    result = trainer.train(resume_from_checkpoint=str(resume_dir) if resume_dir else None)
    if stop.agreed(state.device):
        # Publishing is left to the resumed run, which starts from this step's checkpoint.
        _stopped(trainer, trainer.state.global_step, pushes.last_url)
    metrics = _numbers(result.metrics)
    if eval_dataset is not None and plan.evaluation is not None:
        final = _numbers(trainer.evaluate())
        metrics |= final | {f"base_{k}": v for k, v in (baseline or {}).items()}
        check_gates(plan.evaluation, final, baseline)
    final_dir = work / "final"
    trainer.save_model(str(final_dir))
    outputs: dict[str, Any] = {"model": None, "gguf": []}
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(final_dir))
        outputs = publish(plan, final_dir, tokenizer, metrics, trackio_url, api)
        emit(
            RuntimeEvent(
                ftjob=EventKind.DONE,
                step=trainer.state.global_step,
                total_steps=trainer.state.max_steps,
                loss=metrics.get("train_loss"),
                url=outputs["model"] or final_dir.resolve().as_uri(),
                trackio_url=trackio_url,
                metrics=metrics,
            )
        )
    return {"metrics": metrics, **outputs}


def check_world_size(plan: TrainingPlan, joined: int) -> None:
    """Fail when the run joined another number of processes than the plan's nodes × GPUs: a launcher that
    quietly started one process where several were planned (or one node that trained alone) would train on a
    fraction of the hardware paid for.

    Raises
    ------
    TrainingError
        `WorldSizeMismatch`.
    """
    res = plan.resources
    if joined != res.world_size:
        where = f"{res.nodes} node(s) × {res.processes_per_node} process(es)"
        raise TrainingError(
            "WorldSizeMismatch",
            f"the run joined {joined} process(es), the plan needs {res.world_size} ({where}, one per GPU): the "
            "launcher, a node or its GPUs did not join; check the GPUs each pod sees (`nvidia-smi`), the "
            "rendezvous address (PET_MASTER_ADDR) and every pod's logs",
        )


def check_gates(evaluation: Evaluation, final: dict[str, float], baseline: dict[str, float] | None) -> None:
    """Refuse to publish a model that evaluates worse than the job asked for (`EvaluationGateFailed`).

    Raises
    ------
    TrainingError
        When the final evaluation loss is over `maxLoss`, or not `minImprovement` below the base model's.
    """
    loss = final.get("eval_loss")
    if loss is None:
        return
    if evaluation.max_loss is not None and loss > evaluation.max_loss:
        raise TrainingError(
            "EvaluationGateFailed",
            f"the final evaluation loss {loss:.4f} is over `evaluation.maxLoss` {evaluation.max_loss}: "
            "the model was not pushed",
        )
    base = (baseline or {}).get("eval_loss")
    if evaluation.min_improvement is not None and base is not None:
        target = base * (1 - evaluation.min_improvement)
        if loss > target:
            raise TrainingError(
                "EvaluationGateFailed",
                f"the final evaluation loss {loss:.4f} is not {evaluation.min_improvement:.0%} below the base "
                f"model's {base:.4f} (needs at most {target:.4f}): the model was not pushed",
            )


def _stopped(trainer: Any, step: int, url: str | None) -> None:
    """Report the stop (main process) and end the run with :class:`Stopped`."""
    if trainer.is_world_process_zero():
        emit(
            RuntimeEvent(
                ftjob=EventKind.STOPPED,
                reason="Signal",
                step=step,
                total_steps=trainer.state.max_steps or None,
                url=url,
                message=f"stopped on SIGTERM after step {step}; a new run resumes from there",
            )
        )
    raise Stopped(step)


def _reason(exc: BaseException) -> tuple[str, str]:
    """The CamelCase reason and message for an exception."""
    if isinstance(exc, TrainingError):
        return exc.reason, exc.message
    from finetune_training.hubrepo import ReadFailure, read_failure

    if _from_xet(exc) or read_failure(exc) == ReadFailure.UNAVAILABLE:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return HUB_UNAVAILABLE, (
            f"the Hub could not be reached ({type(exc).__name__}: {first}); a new attempt resumes from the "
            "last checkpoint"
        )
    name = type(exc).__name__
    known = {
        "OutOfMemoryError": "OutOfMemory",
        "RepositoryNotFoundError": "RepositoryNotFound",
        "GatedRepoError": "GatedRepo",
        "RevisionNotFoundError": "RevisionNotFound",
        "EntryNotFoundError": "FileNotFoundOnHub",
        "HfHubHTTPError": "HubError",
        "LocalEntryNotFoundError": "ModelNotFound",
    }
    if name in known:
        return known[name], str(exc).splitlines()[0] if str(exc) else name
    return "TrainingFailed", f"{name}: {exc}"


def _from_xet(exc: BaseException) -> bool:
    """Whether `exc` came out of an `hf_xet` transfer (production uploads and downloads use Xet; its errors
    are plain OS/runtime errors, told apart by where they were raised)."""
    if type(exc).__module__.startswith("hf_xet"):
        return True
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if "hf_xet" in code.co_filename or code.co_name.startswith(("_upload_xet", "xet_get")):
            return True
        tb = tb.tb_next
    return False


def _redact(message: str) -> str:
    token = os.environ.get("HF_TOKEN")
    return message.replace(token, "***") if token else message


def run(plan_path: str | None, plan_env: str = PLAN_ENV) -> int:
    """Load the plan and train; an `error` event and exit code 1 on any failure.

    Returns
    -------
    int
        The exit code: 0 done, 1 failed, 143 stopped on SIGTERM after saving (`STOP_EXIT_CODE`).
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hold_key()  # this process runs reward code next: it must not read the event key from the environment
    try:
        with StopRequest().installed() as stop:
            plan = load_plan(plan_path, plan_env)
            train(plan, stop)
    except Stopped:
        return STOP_EXIT_CODE
    except KeyboardInterrupt:
        emit(RuntimeEvent(ftjob=EventKind.ERROR, reason="Interrupted", message="training was interrupted"))
        return 130
    except Exception as exc:
        if not isinstance(exc, TrainingError) or exc.__cause__ is not None:
            sys.stderr.write(_redact(traceback.format_exc()))
        reason, message = _reason(exc)
        emit(RuntimeEvent(ftjob=EventKind.ERROR, reason=reason, message=_redact(message)))
        return 1
    finally:
        leave_process_group()
    return 0


def leave_process_group() -> None:
    """Tear down a torchrun world's process group before the interpreter exits, as PyTorch asks: left to the
    interpreter's teardown, gloo's threads can abort a rank whose run succeeded ("terminate called without an
    active exception", exit -6; seen once in CI on 2 cores)."""
    torch = sys.modules.get("torch")  # only a run that imported torch can have a group
    if torch is None:
        return
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception as exc:  # the run's outcome stands; only its teardown failed
            sys.stderr.write(f"could not tear down the process group: {exc}\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The runner's options (shared by `ftjob train` and `python -m finetune_training.runner`)."""
    parser.add_argument("--plan", metavar="PLAN_JSON", help="the training plan file (JSON)")
    parser.add_argument(
        "--plan-env",
        metavar="NAME",
        default=PLAN_ENV,
        help=f"without --plan: environment variable holding the plan as base64 JSON (default {PLAN_ENV})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m finetune_training.runner`: train in this process (no accelerate re-launch)."""
    parser = argparse.ArgumentParser(prog="finetune_training.runner", description="Run a training plan.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args.plan, args.plan_env)


if __name__ == "__main__":
    raise SystemExit(main())
