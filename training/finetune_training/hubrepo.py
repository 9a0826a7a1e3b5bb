"""Hub repo helpers shared by checkpoint pushes and publishing."""

from __future__ import annotations

from huggingface_hub import HfApi


def ensure_repo(api: HfApi, repo: str, private: bool, repo_type: str = "model") -> None:
    """Create `repo` unless it exists (checked first, so a re-run never depends on a 409's body)."""
    if not api.repo_exists(repo, repo_type=repo_type):
        api.create_repo(repo, private=private, repo_type=repo_type, exist_ok=True)
