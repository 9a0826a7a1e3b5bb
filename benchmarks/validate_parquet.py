"""Time a dataset verdict for a 1,000,000-row Parquet file of 3-turn conversations.

Prints our time (`inspect_dataset`, every method) and the time of a plain `datasets.load_dataset`
(what a user would otherwise run to look at the data), and the ratio, from one run. The file is
generated once into `.cache/bench/`.

    .venv/bin/python benchmarks/validate_parquet.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"
WORDS = [
    "the", "a", "model", "learns", "from", "data", "when", "each", "example",
    "shows", "what", "good", "answers", "look", "like", "in", "context",
]  # fmt: skip


def sentence(rng: random.Random, n: int) -> str:
    """A random sentence of ``n`` words."""
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` rows of system/user/assistant `messages`, every row distinct, in ONE row group.

    One row group of a million rows is the hard case (it is what `pandas.to_parquet` and
    `pyarrow.parquet.write_table` give by default): a reader that decodes whole row groups pays for all.
    """
    rng = random.Random(seed)
    pool = [sentence(rng, rng.randint(5, 40)) for _ in range(65536)]
    schema = pa.schema([("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])))])
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = []
    step = 100_000
    for start in range(0, rows, step):
        batch = [
            [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": f"{pool[rng.randrange(65536)]} (question {i})"},
                {
                    "role": "assistant",
                    "content": f"{pool[rng.randrange(65536)]} {pool[rng.randrange(65536)]}",
                },
            ]
            for i in range(start, min(rows, start + step))
        ]
        chunks.append(pa.table({"messages": batch}, schema=schema))
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.concat_tables(chunks), tmp, row_group_size=rows)
    tmp.rename(path)


def main() -> None:
    """Generate (once), time both, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    path = CACHE / f"messages-{args.rows}.parquet"
    if not path.exists():
        t = time.perf_counter()
        generate(path, args.rows)
        print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f}s")

    t = time.perf_counter()
    from finetune_operator.validation import inspect_dataset
    from finetune_training.plan import DatasetSource

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    report = inspect_dataset(DatasetSource(name=str(path)))
    ours = time.perf_counter() - t
    verdicts = ", ".join(f"{v.method}={v.verdict.value}" for v in report.verdicts)
    print(f"ours: {ours:.3f}s for a verdict on {report.rows:,} rows ({verdicts}); imports {import_s:.3f}s")

    # The same from a cold process, as a user runs it (interpreter start and imports included).
    t = time.perf_counter()
    cli = [sys.executable, "-m", "finetune_operator.cli.main", "validate", str(path), "-o", "json"]
    done = subprocess.run(cli, capture_output=True, text=True, check=False)
    cold = time.perf_counter() - t
    print(f"ours, cold `ftjob validate` process: {cold:.3f}s (exit {done.returncode})")

    import datasets

    with tempfile.TemporaryDirectory() as cache_dir:
        t = time.perf_counter()
        ds = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=cache_dir)
        theirs = time.perf_counter() - t
    print(f"datasets.load_dataset: {theirs:.3f}s for {len(ds):,} rows")
    print(f"ratio: {theirs / ours:.1f}x faster in process, {theirs / cold:.1f}x from a cold process")


if __name__ == "__main__":
    main()
