"""SKILL.md cannot rot: every ```bash block in it runs, in order, against the local control plane with the
operator running, and every FineTuneJob it shows is a valid spec.

Conventions the skill follows (and this test relies on):

- Every ```bash block is a runnable command sequence; ```yaml blocks are spec fragments (validated here
  with the pydantic model, not applied). Blocks are run one by one with `bash -euo pipefail`, in one
  working folder (so `job.yaml` written by one block is read by the next), and must exit 0 — unless the
  block's first line is a comment `# exit status: N`, which states the status it must exit with.
- Placeholders are `<UPPER_CASE>` words, listed in the skill's "Placeholders" paragraph. The test
  substitutes them textually before running a block (`PLACEHOLDERS` below) and fails when a block uses one
  it does not know. `$HF_TOKEN` is an environment variable, not a placeholder: the token never appears in
  a command.
- No polling loops: blocks contain no `while`, `until`, `sleep` or `watch`; waiting is `kubectl wait`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from finetune_operator.api.spec import FineTuneJobSpec
from tests.conftest import KUBECONFIG, ROOT, kubectl
from tests.example_data import DATASETS

SKILL = ROOT / "SKILL.md"
PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*)>")
EXIT_STATUS = re.compile(r"^#\s*exit status:\s*(\d+)")
SAMPLE_VALUES = {
    "NAMESPACE": "ml",
    "JOB_NAME": "support-bot-sft",
    "MODEL": "Qwen/Qwen3-0.6B",
    "DATASET": "my-org/support-conversations",
    "OUTPUT_REPO": "my-org/support-bot",
    "BACKEND": "Auto",
    "TIMEOUT": "4h",
}
"""Values for checking the skill's YAML without a cluster."""


@dataclass
class Block:
    """A fenced code block of SKILL.md."""

    lang: str
    text: str
    line: int
    """1-based line of the opening fence, for failure messages."""

    @property
    def expected_status(self) -> int:
        """The exit status the block must end with (0 unless its first line says otherwise)."""
        match = EXIT_STATUS.match(self.text.lstrip().splitlines()[0])
        return int(match.group(1)) if match else 0


def skill_text() -> str:
    """SKILL.md's text."""
    return SKILL.read_text()


def blocks(lang: str) -> list[Block]:
    """The fenced blocks of one language, in document order."""
    found: list[Block] = []
    text = skill_text()
    for match in re.finditer(r"^```([a-z]*)\n(.*?)^```\s*$", text, re.S | re.M):
        if match.group(1) == lang:
            found.append(Block(lang, match.group(2), text.count("\n", 0, match.start()) + 1))
    return found


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace `<NAME>` placeholders; fails on one the test does not know."""
    unknown = sorted(set(PLACEHOLDER.findall(text)) - set(values))
    assert not unknown, f"placeholders without a value: {unknown}"
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def front_matter() -> dict[str, Any]:
    """The YAML front matter."""
    match = re.match(r"^---\n(.*?)\n---\n", skill_text(), re.S)
    assert match, "SKILL.md must start with YAML front matter between --- lines"
    return dict(yaml.safe_load(match.group(1)))


def job_specs(values: dict[str, str]) -> list[dict[str, Any]]:
    """Every FineTuneJob spec the skill shows: ```yaml fragments and the job.yaml heredoc."""
    specs = [yaml.safe_load(substitute(b.text, values))["spec"] for b in blocks("yaml")]
    for block in blocks("bash"):
        for heredoc in re.findall(r"<<'EOF'\n(.*?)\nEOF", block.text, re.S):
            doc = yaml.safe_load(substitute(heredoc, values))
            if doc.get("kind") == "FineTuneJob":
                specs.append(doc["spec"])
    return specs


# --- without a cluster -----------------------------------------------------------------------------


def test_front_matter_names_and_describes_the_skill() -> None:
    meta = front_matter()
    assert re.fullmatch(r"[a-z0-9-]{1,64}", meta["name"])
    assert 50 <= len(meta["description"]) <= 1024
    assert "FineTuneJob" in meta["description"]


def test_placeholders_are_documented_and_known() -> None:
    text = skill_text()
    documented = set(PLACEHOLDER.findall(text.split("**Placeholders**", 1)[1].split("\n\n", 1)[0]))
    used = {p for b in blocks("bash") + blocks("yaml") for p in PLACEHOLDER.findall(b.text)}
    assert used <= documented, f"undocumented placeholders: {used - documented}"
    assert documented <= set(SAMPLE_VALUES) and documented <= set(PLACEHOLDERS)


def test_commands_never_poll() -> None:
    for block in blocks("bash"):
        for word in ("while ", "until ", "sleep ", "watch ", " -w ", "--watch"):
            assert word not in block.text, f"SKILL.md line {block.line}: polling (`{word.strip()}`)"


def test_the_skill_shows_a_valid_job_for_each_method() -> None:
    specs = [FineTuneJobSpec.model_validate(s) for s in job_specs(SAMPLE_VALUES)]
    assert {s.method.value for s in specs} == {"SFT", "DPO", "GRPO", "KTO"}
    assert all(s.suspend for s in specs), "every job in the skill is applied suspended first"


def test_the_skill_walks_the_whole_flow() -> None:
    commands = "\n".join(b.text for b in blocks("bash"))
    for step in (
        "ftjob validate",
        "-o json",
        "ftjob plan -f job.yaml -o json",
        "kubectl apply",
        "--for=condition=HardwarePlanned",
        """'{"spec":{"suspend":false}}'""",
        "--for=jsonpath='{.status.completionTime}' ftj/<JOB_NAME> --timeout=<TIMEOUT>",
        "kubectl wait -n <NAMESPACE> --for=condition=Complete ftj/<JOB_NAME>",
        "{.status.outputs}",
        "ftjob status <JOB_NAME> -n <NAMESPACE> -o summary",
    ):
        assert step in commands, step


def test_the_template_sets_only_what_the_user_asked_for_and_the_table_says_the_rest() -> None:
    heredoc = next(
        doc
        for b in blocks("bash")
        for doc in re.findall(r"<<'EOF'\n(.*?)\nEOF", b.text, re.S)
        if "kind: FineTuneJob" in doc
    )
    spec = yaml.safe_load(substitute(heredoc, SAMPLE_VALUES))["spec"]
    assert "budget" not in spec and "private" not in spec["output"], "defaults the user did not ask for"
    table = skill_text().split("| The user asks for", 1)[1].split("\n\n", 1)[0]
    for field in ("maxSteps", "maxCostUSD", "output.gguf", "output.private", "maxLength", "dataset.split"):
        assert field in table, field


def test_the_token_secret_is_created_only_when_missing_and_never_empty() -> None:
    block = next(b.text for b in blocks("bash") if "create secret" in b.text)
    assert "kubectl get secret hf-token" in block and "kubectl apply" not in block
    assert '-n "${HF_TOKEN:-}"' in block and "exit 1" in block


# --- against the local control plane ---------------------------------------------------------------

PLACEHOLDERS = ("NAMESPACE", "JOB_NAME", "MODEL", "DATASET", "OUTPUT_REPO", "BACKEND", "TIMEOUT")


@pytest.fixture
def running_operator(namespace: str, hub: Any, run_operator: Any) -> Iterator[dict[str, Any]]:
    """The operator running in-process (kopf, watching only `namespace`) as the chart's ServiceAccount,
    against the local control plane and the Hub stand-in; the skill's commands run as the user (admin).

    Yields `namespace`, `env` (what the skill's commands run with: KUBECONFIG, HF_ENDPOINT, HF_TOKEN,
    PATH), `dataset_path` (a dataset the skill's SFT flow trains on: Alpaca-shaped, hence its
    `conversion: Alpaca`), `model` (a model repo the stand-in serves), `hub_user` (who HF_TOKEN is) and
    `backend` (the skill's `<BACKEND>`: Local, so the run trains for real on this machine's CPU and pushes
    to the stand-in).
    """
    from tests.e2e.conftest import TINY_REPO
    from tests.hub import DEFAULT_TOKEN, DEFAULT_USER

    with run_operator(FTJOB_ENABLED_BACKENDS=json.dumps(["Local"])):
        yield {
            "namespace": namespace,
            "env": {
                "KUBECONFIG": str(KUBECONFIG),
                "HF_ENDPOINT": hub.url,
                "HF_TOKEN": DEFAULT_TOKEN,
                "PATH": os.environ["PATH"],
                "HOME": os.environ.get("HOME", "/tmp"),
                "HF_HUB_DISABLE_TELEMETRY": "1",
                # `ftjob` runs this checkout's code when the tests do (a worktree beside an install).
                **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
            },
            "dataset_path": str(DATASETS / "alpaca.json"),
            "model": TINY_REPO,
            "hub_user": DEFAULT_USER,
            "backend": "Local",
        }


def job_status(values: dict[str, str]) -> str:
    """The job's status, for a failure message."""
    got = kubectl("get", "ftj", values["JOB_NAME"], "-n", values["NAMESPACE"], "-o", "json", check=False)
    if got.returncode:
        return got.stderr
    return json.dumps(json.loads(got.stdout).get("status"), indent=1)[-4000:]


@pytest.mark.e2e
@pytest.mark.cluster
def test_every_command_in_the_skill_runs(running_operator: dict[str, Any], tmp_path: Path) -> None:
    values = {
        "NAMESPACE": running_operator["namespace"],
        "JOB_NAME": f"skill-{uuid.uuid4().hex[:6]}",
        "MODEL": running_operator["model"],
        "DATASET": running_operator["dataset_path"],
        "OUTPUT_REPO": f"{running_operator.get('hub_user', 'tester')}/skill-{uuid.uuid4().hex[:6]}",
        "BACKEND": running_operator.get("backend", "Auto"),
        "TIMEOUT": "15m",
    }
    outputs: list[str] = []
    for block in blocks("bash"):
        script = substitute(block.text, values)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=running_operator["env"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == block.expected_status, (
            f"SKILL.md block at line {block.line} exited {result.returncode} "
            f"(expected {block.expected_status}):\n{script}\n--- stdout\n{result.stdout[-3000:]}"
            f"\n--- stderr\n{result.stderr[-3000:]}\n--- the job\n{job_status(values)}"
        )
        outputs.append(result.stdout)

    # What the skill tells the agent to read is there: the mapping first, then Ready with it.
    texts = [b.text for b in blocks("bash")]
    validations = [
        json.loads(out) for text, out in zip(texts, outputs, strict=True) if "ftjob validate" in text
    ]
    first, mapped = validations[0], validations[-1]
    sft = next(v for v in first["verdicts"] if v["method"] == "SFT")
    assert sft["verdict"] == "NeedsMapping" and sft["conversion"] == "Alpaca"
    assert next(v for v in mapped["verdicts"] if v["method"] == "SFT")["verdict"] == "Ready"
    summaries = [out for text, out in zip(texts, outputs, strict=True) if "-o summary" in text]
    assert summaries and all(
        re.match(
            rf"Job {values['JOB_NAME']} succeeded \([\w ]+ elapsed\) · step \d+/\d+ · training loss", out
        )
        for out in summaries
    ), summaries
    report = outputs[-1].strip()
    assert report.startswith("{"), f"status.outputs is empty: {report!r}"
