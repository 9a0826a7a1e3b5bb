"""Load the plan's dataset (a local file or folder, or the Hub) and map it onto the method's TRL format."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune_training.errors import TrainingError
from finetune_training.plan import DatasetSource, Method, RewardSpec, RewardType, TrainingPlan
from finetune_training.profiles import profile

if TYPE_CHECKING:
    from datasets import Dataset

# datasets' packaged builder for each local file suffix.
BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def _local_builder(path: Path) -> tuple[str, list[str]]:
    """The builder name and data files for a local file or folder."""
    if path.is_file():
        builder = BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise TrainingError(
                "DatasetFormatUnsupported",
                f"`dataset.name` {path.name} must end in one of {sorted(BUILDERS)}",
            )
        return builder, [str(path)]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in BUILDERS)
    if not files:
        raise TrainingError("DatasetNotFound", f"the folder `{path}` holds no {sorted(BUILDERS)} files")
    builders = {BUILDERS[p.suffix.lower()] for p in files}
    if len(builders) > 1:
        raise TrainingError(
            "DatasetFormatUnsupported", f"the folder `{path}` mixes formats {sorted(builders)}"
        )
    return builders.pop(), [str(p) for p in files]


def load_source(source: DatasetSource, token: str | None = None) -> Dataset:
    """The raw split of a local file/folder or a Hub dataset.

    Parameters
    ----------
    source
        The plan's dataset. Local files are one `train` split; a folder's files are split by name
        (``train*.jsonl``, ``test*.jsonl``) when they are named so, else all form `train`.
    token
        Hub token for private or gated datasets.

    Returns
    -------
    datasets.Dataset
        The rows, not yet mapped.
    """
    import datasets

    path = Path(source.name).expanduser()
    try:
        if path.exists():
            builder, files = _local_builder(path)
            split_files = [f for f in files if Path(f).name.startswith(source.split.split("[")[0])]
            base_split = source.split.split("[")[0]
            if split_files:
                data_files: dict[str, list[str]] = {base_split: split_files}
            elif base_split == "train":
                data_files = {"train": files}
            else:
                raise TrainingError(
                    "DatasetSplitNotFound",
                    f"`dataset.split` {source.split!r} does not exist in local `{path}`: only `train` "
                    "(name files `<split>*.jsonl` to provide other splits)",
                )
            return datasets.load_dataset(builder, data_files=data_files, split=source.split)
        return datasets.load_dataset(
            source.name, source.config, split=source.split, revision=source.revision, token=token
        )
    except TrainingError:
        raise
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise TrainingError(
                "DatasetSplitNotFound", f"`dataset.split` {source.split!r} does not exist: {exc}"
            ) from exc
        raise TrainingError("DatasetInvalid", f"cannot load dataset `{source.name}`: {exc}") from exc
    except FileNotFoundError as exc:
        raise TrainingError("DatasetNotFound", f"dataset `{source.name}` was not found: {exc}") from exc
    except Exception as exc:
        name = type(exc).__name__
        if name in {"RepositoryNotFoundError", "DatasetNotFoundError", "GatedRepoError"}:
            raise TrainingError(
                "DatasetNotFound", f"dataset `{source.name}` is not reachable: {exc}"
            ) from exc
        raise


def keep_columns(method: Method, rewards: list[RewardSpec]) -> set[str]:
    """Columns the trainer needs after mapping: its TRL columns and, for GRPO, reward columns."""
    keep = set(profile(method).trl_columns)
    if method == Method.GRPO:
        keep |= {r.answer_column for r in rewards if r.type == RewardType.ACCURACY and r.answer_column}
    return keep


def prepare_dataset(
    source: DatasetSource, method: Method, rewards: list[RewardSpec] | None = None, token: str | None = None
) -> Dataset:
    """Load the dataset, apply the plan's conversion and column mapping, keep the method's columns.

    Parameters
    ----------
    source
        The plan's dataset.
    method
        Which trainer will read the rows.
    rewards
        GRPO rewards; the reference columns they read are kept. Python rewards keep every mapped column.
    token
        Hub token.

    Returns
    -------
    datasets.Dataset
        Rows in TRL's format for `method`.
    """
    from finetune_training.mapping import map_row

    rewards = rewards or []
    raw = load_source(source, token)
    if len(raw) == 0:
        raise TrainingError(
            "DatasetEmpty", f"`dataset.split` {source.split!r} of `{source.name}` has no rows"
        )

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        return map_row(row, source.conversion, source.columns)

    try:
        mapped = raw.map(
            convert,
            remove_columns=raw.column_names,
            features=_mapped_features(raw, convert),
            desc="Mapping dataset",
        )
    except TrainingError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise TrainingError(
            "DatasetMappingFailed",
            f"rows of `{source.name}` do not fit `dataset.conversion`/`dataset.columns`: {exc}",
        ) from exc
    keep_all = method == Method.GRPO and any(r.type == RewardType.PYTHON for r in rewards)
    keep = keep_columns(method, rewards)
    drop = [] if keep_all else [c for c in mapped.column_names if c not in keep]
    if drop:
        mapped = mapped.remove_columns(drop)
    _check_format(mapped.column_names, method)
    return mapped


def _mapped_features(raw: Dataset, convert: Any) -> Any:
    """Features of the mapped rows with every list-of-turns column as `List(Json())`: turns differ in keys (a
    tool-call turn has `tool_calls`), and Arrow would otherwise fix a turn's struct from the first written
    batch and refuse a later row whose turns have other keys (see :mod:`finetune_training.mapping`)."""
    from datasets import Features, Json, List

    from finetune_training.mapping import TURN_COLUMNS

    probe = raw.select(range(1)).map(convert, remove_columns=raw.column_names)
    turns = {c: List(Json()) for c in TURN_COLUMNS if isinstance(probe.features.get(c), List)}
    return Features({**probe.features, **turns}) if turns else None


def _check_format(columns: list[str], method: Method) -> None:
    """Fail before training when the mapped rows lack what the trainer reads."""
    have = set(columns)
    need = profile(method).missing(have)
    if need is None:
        return
    raise TrainingError(
        "DatasetIncompatible",
        f"{need} after mapping, but the rows have {sorted(have)}; "
        "set `dataset.conversion` or `dataset.columns` (see `ftjob validate`)",
    )


def evaluation_split(
    dataset: Dataset, plan: TrainingPlan, token: str | None = None
) -> tuple[Dataset, Dataset | None]:
    """The training rows and the held-out evaluation rows for `plan.evaluation` (None without one).

    A named split is read and mapped like the training split; otherwise `fraction` of the training rows
    is held out, chosen by the plan's seed (the same rows on every attempt, and never trained on).
    """
    evaluation = plan.evaluation
    if evaluation is None:
        return dataset, None
    if evaluation.split:
        source = plan.dataset.model_copy(update={"split": evaluation.split})
        held_out = prepare_dataset(source, plan.method, plan.rewards, token)
    else:
        if len(dataset) < 2:
            raise TrainingError(
                "DatasetTooSmall", "evaluation needs at least 2 rows to hold one out: name `evaluation.split`"
            )
        size = max(1, min(round(len(dataset) * evaluation.fraction), evaluation.max_rows, len(dataset) - 1))
        parts = dataset.train_test_split(test_size=size, seed=plan.hyperparameters.seed, shuffle=True)
        dataset, held_out = parts["train"], parts["test"]
    if len(held_out) > evaluation.max_rows:
        held_out = held_out.shuffle(seed=plan.hyperparameters.seed).select(range(evaluation.max_rows))
    return dataset, held_out
