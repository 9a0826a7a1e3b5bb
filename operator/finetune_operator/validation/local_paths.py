"""Which local paths a FineTuneJob may name: none, except on the Local backend under allowed roots.

The operator reads a dataset or model it validates and plans, so a path in a spec would let any
FineTuneJob author read (and see listings and rows of) the operator's own files. Only the Local backend's
run reads local paths at all (its offers' `reads_local_paths`), and only under
`OperatorConfig.local_path_roots`.
"""

from __future__ import annotations

import os
from pathlib import Path

from finetune_operator.api.spec import Backend, FineTuneJobSpec
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import SpecError
from finetune_operator.planning.offers import OFFERS
from finetune_operator.validation.local import looks_local


def _allowed(path: Path, roots: list[Path]) -> bool:
    real = Path(os.path.realpath(path.expanduser()))  # symlinks and `..` cannot leave a root
    return any(real.is_relative_to(os.path.realpath(root)) for root in roots)


def _readers() -> str:
    """The backends whose run reads local paths (`backend: Local`)."""
    return " or ".join(
        f"`backend: {name.value}`" for name, offers in OFFERS.items() if offers.reads_local_paths
    )


def check_local_paths(spec: FineTuneJobSpec, config: OperatorConfig) -> None:
    """Refuse (`LocalPathRefused`) a dataset or model named by a local path this job may not read.

    The message names the field and the allowed roots, never what exists on the operator's host.
    """
    roots = list(config.local_path_roots)
    for field, name in (("spec.dataset.name", spec.dataset.name), ("spec.model.name", spec.model.name)):
        if not looks_local(name):
            continue
        if spec.backend == Backend.AUTO or not OFFERS[spec.backend].reads_local_paths:
            raise SpecError(
                "LocalPathRefused",
                f"`{field}` is a local path, read only by {_readers()}: name a Hub repo (`owner/name`) instead",
            )
        if not _allowed(Path(name), roots):
            where = (
                ", ".join(f"`{r}`" for r in roots) if roots else "none (this operator allows no local paths)"
            )
            raise SpecError(
                "LocalPathRefused",
                f"`{field}` is a local path outside the folders this operator allows ({where}): name a Hub "
                "repo (`owner/name`), or a path under an allowed folder",
            )
