"""What can be checked of images/*/Dockerfile without a Docker engine: pinned bases, package versions that
agree with pyproject.toml, files that exist, a non-root user, the CLI's entrypoint, and several stages."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from finetune_operator.config import OperatorConfig

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("operator", "trainer")
EXTRA = {"operator": {"operator"}, "trainer": {"training", "gpu"}}
"""The pyproject extras each image installs the project with."""
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([A-Za-z0-9.+!-]+)$")


@dataclass
class Instruction:
    """One Dockerfile instruction, continuation lines joined, comments dropped."""

    keyword: str
    args: str
    stage: int
    """Index of the FROM this instruction belongs to (-1 before the first FROM)."""


def parse(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile."""
    out: list[Instruction] = []
    stage = -1
    buffer = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        full = (buffer + line).strip()
        buffer = ""
        keyword, _, args = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    return out


def pins(requirements: list[str]) -> dict[str, str]:
    """`name==version` requirements as {normalised name: version}."""
    found: dict[str, str] = {}
    for req in requirements:
        match = REQUIREMENT.match(req.strip())
        if match:
            found[normalise(match.group(1))] = match.group(2)
    return found


def normalise(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


PROJECT_PINS = pins(
    list(PYPROJECT["project"]["dependencies"])
    + [r for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra]
)


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    """ARG name=default pairs (the global ones substitute into FROM lines)."""
    found: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args:
            name, _, value = ins.args.partition("=")
            found[name.strip()] = value.strip().strip('"')
    return found


def substitute(text: str, args: dict[str, str]) -> str:
    """`${NAME}` and `$NAME` replaced by ARG defaults."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), text)


def stages(instructions: list[Instruction]) -> list[tuple[str, str | None]]:
    """(image, stage name) for each FROM, with ARG defaults substituted."""
    args = arg_defaults([i for i in instructions if i.stage == -1])
    out: list[tuple[str, str | None]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--platform")]
            image = substitute(words[0], args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            out.append((image, name))
    return out


def dockerfile(image: str) -> list[Instruction]:
    """The parsed Dockerfile of `image`; fails (never skips) when it is missing."""
    path = ROOT / "images" / image / "Dockerfile"
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    return parse(path)


def exec_form(args: str) -> list[str]:
    """An ENTRYPOINT/CMD as a list (exec form JSON, or shell form split)."""
    return list(json.loads(args)) if args.startswith("[") else shlex.split(args)


@pytest.mark.parametrize("image", IMAGES)
def test_multi_stage(image: str) -> None:
    assert len(stages(dockerfile(image))) > 1


@pytest.mark.parametrize("image", IMAGES)
def test_base_images_are_pinned(image: str) -> None:
    built: set[str] = set()
    for ref, name in stages(dockerfile(image)):
        if ref in built:  # FROM an earlier stage
            continue
        assert "$" not in ref, f"{ref}: an ARG without a default"
        name_part, _, digest = ref.partition("@")
        tag = name_part.rsplit(":", 1)[1] if ":" in name_part.rsplit("/", 1)[-1] else ""
        assert digest.startswith("sha256:") or (tag and tag != "latest"), f"{image}: base {ref} is not pinned"
        if name:
            built.add(name)


@pytest.mark.parametrize("image", IMAGES)
def test_python_packages_agree_with_pyproject(image: str) -> None:
    instructions = dockerfile(image)
    args = arg_defaults(instructions)
    runs = [substitute(i.args, args) for i in instructions if i.keyword == "RUN"]
    installed = pins([w.strip("'\"") for run in runs for w in run.split() if "==" in w])
    if image == "trainer":
        assert installed.get("torch"), "the trainer pins torch before the rest (as `make setup` does)"
    for name, version in installed.items():
        if name in PROJECT_PINS:
            assert version == PROJECT_PINS[name], (
                f"{image}: {name}=={version}, pyproject pins {PROJECT_PINS[name]}"
            )
    # The dependencies go in with exactly the extras the image is for (images/requirements.py reads them
    # from pyproject.toml), then the project's own wheel without dependencies.
    extras = {
        e for run in runs for m in re.findall(r"requirements\.py \S+ ([a-z ]+)", run) for e in m.split()
    }
    assert extras == EXTRA[image], f"{image} installs extras {extras}"
    for extra in extras:
        assert extra in PYPROJECT["project"]["optional-dependencies"]


@pytest.mark.parametrize("image", IMAGES)
def test_python_interpreter_satisfies_requires_python(image: str) -> None:
    minimum = tuple(int(p) for p in PYPROJECT["project"]["requires-python"].removeprefix(">=").split("."))
    for ref, _ in stages(dockerfile(image)):
        match = re.match(r"^(?:docker\.io/(?:library/)?)?python:(\d+)\.(\d+)", ref)
        if match:
            assert (int(match.group(1)), int(match.group(2))) >= minimum, ref


def test_trainer_pins_the_llama_cpp_tools_of_make_gguf_tools() -> None:
    script = (ROOT / "training" / "gguf-tools.sh").read_text()
    default = re.search(r"LLAMA_CPP_PYTHON_VERSION:-([0-9.]+)", script)
    assert default
    assert arg_defaults(dockerfile("trainer")).get("LLAMA_CPP_PYTHON_VERSION") == default.group(1)


@pytest.mark.parametrize("image", IMAGES)
def test_copied_files_exist(image: str) -> None:
    """COPY sources are relative to the build context, the repository root."""
    for ins in dockerfile(image):
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        words = shlex.split(ins.args)
        if any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        assert sources, ins.args
        for src in sources:
            assert list(ROOT.glob(src.lstrip("/"))), f"{image}: COPY {src}: no such file in the repository"


@pytest.mark.parametrize("image", IMAGES)
def test_runs_as_non_root(image: str) -> None:
    instructions = dockerfile(image)
    last_stage = max(i.stage for i in instructions)
    users = [i.args for i in instructions if i.keyword == "USER" and i.stage == last_stage]
    assert users, f"{image}: the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"{image}: runs as {users[-1]}"


def test_operator_uid_matches_the_charts_security_context() -> None:
    """The chart sets runAsNonRoot, which needs a numeric uid; it must be the image's."""
    user = next(i.args for i in reversed(dockerfile("operator")) if i.keyword == "USER").split(":")[0]
    values = yaml.safe_load((ROOT / "charts" / "finetune-operator" / "values.yaml").read_text())
    assert user.isdigit(), "USER must be numeric for runAsNonRoot"
    assert values["podSecurityContext"]["runAsUser"] == int(user)


def test_the_trainer_command_runs_as_sent_whether_it_replaces_entrypoint_or_cmd() -> None:
    """Kubernetes' `command` replaces the image's ENTRYPOINT; an API with `docker run` semantics (HF Jobs
    may be one) keeps the ENTRYPOINT and replaces CMD. Either way the run must be `ftjob train …` once."""
    instructions = dockerfile("trainer")
    entry = [exec_form(i.args) for i in instructions if i.keyword == "ENTRYPOINT"]
    entrypoint = entry[-1] if entry else []
    sent = [*OperatorConfig().trainer_command, "--plan", "/plan/plan.json"]
    as_kubernetes = sent
    as_docker_run = [*entrypoint, *sent]
    assert as_kubernetes == as_docker_run, f"ENTRYPOINT {entrypoint} would run {as_docker_run}"
    assert sent[:2] == ["ftjob", "train"] and "ftjob" in PYPROJECT["project"]["scripts"]
    cmd = [exec_form(i.args) for i in instructions if i.keyword == "CMD"]
    assert cmd and cmd[-1][0] == "ftjob", "the image's default command runs the CLI"


def test_operator_entrypoint_runs_kopf_on_the_operator_module() -> None:
    entry = [i.args for i in dockerfile("operator") if i.keyword == "ENTRYPOINT"]
    assert entry, "the operator image has no ENTRYPOINT"
    argv = exec_form(entry[-1])
    assert argv[:2] == ["kopf", "run"], argv
    assert "finetune_operator.main" in argv and "--standalone" in argv
    assert any(a.startswith("--liveness=") and a.endswith("/healthz") for a in argv)
    assert (ROOT / "operator" / "finetune_operator" / "main.py").exists()
