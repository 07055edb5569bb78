"""Small real-corpus sources folders for tests that build catalogs of their own."""

from __future__ import annotations

from pathlib import Path


def sigma_subset(corpora: Path, dest: Path, n: int = 60) -> Path:
    """A sources folder holding the first ``n`` real Sigma process-creation rules
    (sorted by file name) and the ATT&CK bundle: a real-corpus build in seconds."""
    import shutil

    rules = sorted((corpora / "sigma" / "rules" / "windows" / "process_creation").glob("*.yml"))
    target = dest / "sigma" / "rules"
    target.mkdir(parents=True)
    for path in rules[:n]:
        shutil.copy(path, target / path.name)
    (dest / "attack").mkdir()
    (dest / "attack" / "enterprise-attack.json").symlink_to(
        corpora / "attack" / "enterprise-attack.json"
    )
    return dest
