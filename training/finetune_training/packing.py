"""A collator for packed SFT rows that keeps documents apart without flash-attn.

TRL's padding-free collator flattens a whole batch into one row; without a varlen kernel transformers then
builds one attention mask over every token of the batch (quadratic in the batch, slow over SDPA). Here
each packed row stays a row: position ids restart at every document and no attention mask is passed, so
transformers derives a block-causal mask per row (SDPA or flex attention) and a document never attends to
another. The loss is the same as training each document alone: labels at document starts are ignored,
exactly as in TRL's padding-free mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class RowwisePackedCollator:
    """Batch packed rows (`input_ids`, `labels`, `seq_lengths`) as rows with per-document position ids.

    Parameters
    ----------
    pad_token_id
        Token used to pad rows to the batch's longest row.
    pad_to_multiple_of
        Round the padded length up to a multiple of this (helps kernels); None for none.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The batch: `input_ids`, `labels` (-100 on pads and document starts), `position_ids`."""
        longest = max(len(e["input_ids"]) for e in examples)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(examples), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), longest), -100, dtype=torch.long)
        # Padding is its own trailing "document" (positions from 0), so it never joins a real one.
        position_ids = torch.zeros((len(examples), longest), dtype=torch.long)
        for i, example in enumerate(examples):
            ids = torch.as_tensor(example["input_ids"], dtype=torch.long)
            n = ids.numel()
            input_ids[i, :n] = ids
            labels[i, :n] = torch.as_tensor(example.get("labels", example["input_ids"]), dtype=torch.long)
            lengths = [int(x) for x in example.get("seq_lengths") or [n]]
            if longest > n:
                lengths.append(longest - n)
            position_ids[i] = torch.cat([torch.arange(length) for length in lengths])
            # The last token of one document must not learn to predict the first of the next.
            labels[i][position_ids[i] == 0] = -100
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
