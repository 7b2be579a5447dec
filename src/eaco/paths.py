"""Where the bundled and shared data live.

The shared, read-only data set (traces, measured co-location throughputs, power measurements,
the paper's tables) sits in ``../shared/data`` next to the project checkout. Set ``EACO_DATA_DIR``
to point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DATA_DIR = Path(__file__).resolve().parent / "data"


def shared_data_dir() -> Path:
    """Return the shared data directory, or raise FileNotFoundError saying where we looked."""
    env = os.environ.get("EACO_DATA_DIR")
    candidates: list[Path] = []
    if env:
        candidates.append(Path(env))
    repo_root = Path(__file__).resolve().parents[2]
    candidates.append(repo_root.parent / "shared" / "data")
    cwd = Path.cwd().resolve()
    for base in (cwd, *cwd.parents):
        candidates.append(base / "shared" / "data")
        candidates.append(base.parent / "shared" / "data")
        if len(candidates) > 12:
            break
    for path in candidates:
        if (path / "traces").is_dir():
            return path
    looked = ", ".join(str(p) for p in candidates[:4])
    raise FileNotFoundError(
        f"shared data directory not found (looked in {looked}); "
        "set EACO_DATA_DIR to the folder that holds traces/, colocation/, power/ and paper/"
    )


def shared_file(*parts: str) -> Path:
    path = shared_data_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path}: bundled data file missing")
    return path
