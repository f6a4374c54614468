"""Where a result came from: code version (package version, git commit) and fingerprints of configs and files."""

from __future__ import annotations

import hashlib
import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from forecaster import __version__

_REPO = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """``{"version", "git_commit", "git_dirty"}``; the git fields are None outside a git checkout."""
    commit: str | None = None
    dirty: bool | None = None
    if (_REPO / ".git").exists():
        try:
            commit = _git("rev-parse", "HEAD")
            dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
        except (OSError, subprocess.SubprocessError):
            commit, dirty = None, None
    return {"version": __version__, "git_commit": commit, "git_dirty": dirty}


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=_REPO, capture_output=True, text=True, timeout=10, check=True)
    return out.stdout.strip()


def fingerprint(value: Any) -> str:
    """SHA-256 of a JSON-serializable value with sorted keys (a config's identity). 16 hex digits."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
