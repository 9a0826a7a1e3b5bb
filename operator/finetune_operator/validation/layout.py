"""Which files make up a config's split: the Hub's conventions, for Hub repos and local folders alike.

The rules follow `datasets` (and the Hub's viewer): `configs` in the README's YAML header when present;
otherwise split names found in file or folder names (`train.jsonl`, `data/test-00000-of-00001.parquet`,
`validation/…`), and every file in `train` when no name says otherwise. The parquet conversion branch
(`refs/convert/parquet`) lays files out as `{config}/{split}/NNNN.parquet`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml

from finetune_operator.validation.errors import invalid, names, not_found
from finetune_operator.validation.readers import FORMATS, file_format

SPLIT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
"""The split names `datasets` recognises in file and folder names."""

SHARDED = re.compile(r"^data/(?P<split>[\w-]+?)-\d{5}-of-\d{5}[^/]*$")
SEP = r"[-._ 0-9]"


@dataclass
class DataFile:
    """A file of the repo or folder."""

    path: str
    size: int | None = None


@dataclass
class Layout:
    """The files of the chosen config and split, and what else exists."""

    config: str
    split: str
    files: list[DataFile]
    configs: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)


def is_data_file(path: str) -> bool:
    """A file `datasets` would read: a known format, not hidden, not under `.`/`__` folders."""
    parts = path.split("/")
    if any(p.startswith((".", "__")) for p in parts):
        return False
    return file_format(path) is not None


def read_readme_configs(readme: str | None) -> list[dict[str, Any]]:
    """The `configs` list of a dataset card's YAML header (empty when there is none)."""
    if not readme or not readme.startswith("---"):
        return []
    end = readme.find("\n---", 3)
    if end < 0:
        return []
    try:
        header = yaml.safe_load(readme[3:end]) or {}
    except yaml.YAMLError:
        return []
    configs = header.get("configs") if isinstance(header, dict) else None
    if not isinstance(configs, list):
        return []
    return [c for c in configs if isinstance(c, dict) and isinstance(c.get("config_name"), str)]


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob (`*` within a folder, `**` across folders, `?`, `[…]`) as a regex."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i)
            if end < 0:
                out += re.escape(c)
            else:
                out += pattern[i : end + 1]
                i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "$")


def match_glob(pattern: str, files: list[DataFile]) -> list[DataFile]:
    """The files matching ``pattern`` (relative to the repo root; a folder name matches its files)."""
    pattern = pattern.removeprefix("./")
    regex = _glob_regex(pattern)
    folder = pattern.rstrip("/") + "/"
    return [
        f
        for f in files
        if regex.match(f.path) or (not any(ch in pattern for ch in "*?[") and f.path.startswith(folder))
    ]


def split_of(path: str) -> str | None:
    """The split a file belongs to by its name or folder (`datasets` conventions), or None."""
    sharded = SHARDED.match(path)
    if sharded:
        return sharded.group("split")
    parts = path.lower().split("/")
    stem = parts[-1].split(".", 1)[0]
    for split, keywords in SPLIT_KEYWORDS.items():
        for kw in keywords:
            if re.fullmatch(rf"(?:.*{SEP})?{kw}{SEP}*", stem):
                return split
    for split, keywords in SPLIT_KEYWORDS.items():
        for kw in keywords:
            if any(re.fullmatch(rf"(?:.*{SEP})?{kw}{SEP}*", d) for d in parts[:-1]):
                return split
    return None


def splits_by_convention(files: list[DataFile]) -> dict[str, list[DataFile]]:
    """Files grouped by split from their names; all in `train` when no name says a split."""
    data = [f for f in files if is_data_file(f.path)]
    grouped: dict[str, list[DataFile]] = {}
    for f in data:
        split = split_of(f.path)
        if split is not None:
            grouped.setdefault(split, []).append(f)
    if not grouped and data:
        grouped["train"] = data
    return grouped


def _config_splits(config: dict[str, Any], files: list[DataFile]) -> dict[str, list[DataFile]]:
    base = str(config.get("data_dir") or "").strip("/")
    scoped = (
        [DataFile(f.path[len(base) + 1 :], f.size) for f in files if f.path.startswith(base + "/")]
        if base
        else files
    )

    def full(found: list[DataFile]) -> list[DataFile]:
        return [DataFile(f"{base}/{f.path}", f.size) for f in found] if base else found

    data_files = config.get("data_files")
    if data_files is None:
        return {k: full(v) for k, v in splits_by_convention(scoped).items()}
    entries: list[tuple[str, list[str]]] = []
    if isinstance(data_files, str):
        entries.append(("train", [data_files]))
    elif isinstance(data_files, list):
        for item in data_files:
            if isinstance(item, str):
                entries.append(("train", [item]))
            elif isinstance(item, dict):
                paths = item.get("path")
                paths = [paths] if isinstance(paths, str) else [p for p in paths or [] if isinstance(p, str)]
                entries.append((str(item.get("split", "train")), paths))
    elif isinstance(data_files, dict):
        for split, paths in data_files.items():
            entries.append((str(split), [paths] if isinstance(paths, str) else list(paths or [])))
    out: dict[str, list[DataFile]] = {}
    for split, patterns in entries:
        found: list[DataFile] = []
        for pattern in patterns:
            found.extend(f for f in match_glob(pattern, scoped) if is_data_file(f.path) and f not in found)
        out.setdefault(split, []).extend(full(found))
    return out


def resolve(
    files: list[DataFile],
    *,
    readme: str | None,
    config: str | None,
    split: str,
    where: str,
    parquet_branch: bool = False,
) -> Layout:
    """Pick the files of ``config``/``split``.

    Parameters
    ----------
    files
        Every file of the repo (or folder), paths relative to its root.
    readme
        The README.md text, for its `configs` header.
    config
        The requested config, or None for the default one.
    split
        The requested split.
    where
        How messages name the dataset.
    parquet_branch
        The files come from `refs/convert/parquet` (`{config}/{split}/NNNN.parquet`).

    Raises
    ------
    SpecError
        `DatasetNotFound` naming the configs or splits that exist, when the requested one does not;
        `DatasetInvalid` when there are no data files at all.
    """
    per_config: dict[str, dict[str, list[DataFile]]] = {}
    default: str | None = None
    if parquet_branch:
        for f in files:
            parts = f.path.split("/")
            if len(parts) >= 3 and f.path.endswith(".parquet"):
                split_name = parts[1].removeprefix("partial-")
                per_config.setdefault(parts[0], {}).setdefault(split_name, []).append(f)
    else:
        for entry in read_readme_configs(readme):
            name = entry["config_name"]
            per_config[name] = _config_splits(entry, files)
            if entry.get("default"):
                default = name
        if not per_config:
            per_config["default"] = splits_by_convention(files)
    per_config = {k: v for k, v in per_config.items() if v or len(per_config) == 1}
    configs = sorted(per_config)
    if not any(per_config.values()):
        # A count, not the names: the message reaches status and Events, which must not list a folder.
        count = f"{len(files)} other file{'' if len(files) == 1 else 's'}"
        raise invalid(f"{where} has no data files ({', '.join(FORMATS)}); {count}")
    if config is None:
        if default is None and "default" in per_config:
            default = "default"
        if default is None and len(per_config) == 1:
            default = configs[0]
        if default is None:
            raise not_found(f"{where} has several configs, set `config` to one of {names(configs)}")
        config = default
    if config not in per_config:
        raise not_found(f"{where} has no config `{config}`; it has {names(configs)}")
    splits = per_config[config]
    if split not in splits or not splits[split]:
        available = [k for k, v in splits.items() if v]
        hint = f"`{available[0]}`" if len(available) == 1 else "one of them"
        raise not_found(
            f"{where} (config `{config}`) has no split `{split}`; it has {names(available)}: set "
            f"`dataset.split` (`ftjob validate --split`) to {hint}"
        )
    chosen = sorted(splits[split], key=lambda f: f.path)
    formats_found = {file_format(f.path) for f in chosen}
    if len(formats_found) > 1:
        first = file_format(chosen[0].path)
        chosen = [f for f in chosen if file_format(f.path) == first]
    return Layout(config=config, split=split, files=chosen, configs=configs, splits=sorted(splits))
