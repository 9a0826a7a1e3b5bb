"""GRPO reward functions: answer extraction, normalisation, format and length, user functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_training.errors import TrainingError
from finetune_training.plan import RewardSpec, RewardType
from finetune_training.rewards import (
    accuracy_reward,
    build_rewards,
    completion_text,
    extract_answer,
    format_reward,
    length_reward,
    load_user_function,
)

GSM8K_REFERENCE = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $18.\n#### 18"


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (GSM8K_REFERENCE, "18"),
        ("so the total is \\boxed{\\frac{3}{4}} in the end", "\\frac{3}{4}"),
        ("nested \\boxed{2^{10}} here", "2^{10}"),
        ("<think>1+1</think><answer>2</answer>", "2"),
        ("First 3 apples, then 5 pears, so 1,234.5 in total.", "1,234.5"),
        ("no digits at all", None),
    ],
)
def test_extract_answer_finds_the_final_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_accuracy_compares_numbers_after_normalisation() -> None:
    reward = accuracy_reward()
    completions = ["The answer is $18.00.", "#### 1,000", "It is 17", "\\boxed{0.75}", "nothing"]
    answers = [GSM8K_REFERENCE, "#### 1000", "#### 18", "\\boxed{\\frac{3}{4}}", "#### 5"]
    assert reward(completions, prompts=None, answer=answers) == [1.0, 1.0, 0.0, 1.0, 0.0]


def test_accuracy_reads_conversational_completions() -> None:
    reward = accuracy_reward()
    completions = [[{"role": "assistant", "content": "I think #### 18"}]]
    assert reward(completions, prompts=None, answer=[GSM8K_REFERENCE]) == [1.0]
    assert completion_text([{"role": "assistant", "content": "x"}]) == "x"


def test_accuracy_uses_the_named_column_and_fails_clearly_without_it() -> None:
    reward = accuracy_reward("solution")
    assert reward(["42"], prompts=None, solution=["#### 42"]) == [1.0]
    with pytest.raises(TrainingError) as err:
        reward(["42"], prompts=None, answer=["#### 42"])
    assert err.value.reason == "RewardColumnMissing"


def test_format_rewards_only_the_tag_layout() -> None:
    reward = format_reward()
    good = "<think>add them</think>\n<answer>4</answer>"
    assert reward([good, "<answer>4</answer>", "4", "<think>a</think><answer>4</answer> extra"]) == [
        1.0,
        0.0,
        0.0,
        0.0,
    ]
    assert format_reward(["reasoning"])(["<reasoning>x</reasoning>"]) == [1.0]


def test_length_peaks_at_the_target() -> None:
    reward = length_reward(10)
    assert reward(["x" * 10, "x" * 5, "x" * 30, ""]) == [1.0, 0.5, 0.0, 0.0]


def test_default_rewards_are_accuracy_on_answer() -> None:
    funcs, weights = build_rewards([], ["prompt", "answer"])
    assert [f.__name__ for f in funcs] == ["accuracy"] and weights == [1.0]
    with pytest.raises(TrainingError) as err:
        build_rewards([], ["prompt"])
    assert err.value.reason == "RewardColumnMissing" and "answer" in err.value.message


def test_weights_follow_the_specs() -> None:
    specs = [
        RewardSpec(type=RewardType.FORMAT, weight=0.5),
        RewardSpec(type=RewardType.LENGTH, weight=-1, target_length=20),
    ]
    funcs, weights = build_rewards(specs, ["prompt"])
    assert [f.__name__ for f in funcs] == ["format", "length"] and weights == [0.5, -1.0]


def test_inline_code_reward_gets_completions_prompts_and_columns() -> None:
    code = (
        "def reward(completions, prompts, **columns):\n"
        "    return [float(len(c) == len(p) + k) for c, p, k in zip(completions, prompts, columns['k'])]\n"
    )
    fn = load_user_function(RewardSpec(type=RewardType.PYTHON, code=code))
    assert fn(["abc", "ab"], prompts=["a", "a"], k=[2, 2]) == [1.0, 0.0]
    assert fn.__name__ == "reward"


def test_module_function_reward_is_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_rewards.py").write_text(
        "def short(completions, prompts, **columns):\n"
        "    return [1.0 if len(c) < 3 else 0.0 for c in completions]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = load_user_function(RewardSpec(type=RewardType.PYTHON, function="my_rewards:short"))
    assert fn(["a", "abcd"], prompts=["p", "p"]) == [1.0, 0.0]


@pytest.mark.parametrize(
    "spec",
    [
        RewardSpec(type=RewardType.PYTHON),
        RewardSpec(type=RewardType.PYTHON, function="no_colon"),
        RewardSpec(type=RewardType.PYTHON, function="no.such.module:f"),
        RewardSpec(type=RewardType.PYTHON, code="x = 1"),
        RewardSpec(type=RewardType.PYTHON, code="def reward(:"),
    ],
)
def test_bad_user_rewards_fail_with_a_reason(spec: RewardSpec) -> None:
    with pytest.raises(TrainingError) as err:
        load_user_function(spec)
    assert err.value.reason == "RewardInvalid"


def test_user_reward_returning_the_wrong_shape_is_reported() -> None:
    fn = load_user_function(
        RewardSpec(type=RewardType.PYTHON, code="def reward(completions, **kw):\n  return 1")
    )
    with pytest.raises(TrainingError, match="must return a list of 2 floats"):
        fn(["a", "b"], prompts=["p", "p"])
