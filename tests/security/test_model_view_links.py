"""``model_path`` never writes through a planted link in its ``snapshots/`` view tree.

The views live in the cache's own folder; a link someone put where a view folder goes
(``snapshots`` itself, a model's or a revision's folder) is refused by name, and
nothing is created or replaced where it points.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from llamacache import CacheManager, ModelCache
from llamacache.config import resolve
from llamacache.errors import UnsafeCacheDirError


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("planted", ["", "org", "org/tiny", "org/tiny/main"])
def test_a_planted_link_in_the_view_tree_is_refused(tmp_path: Path, planted: str) -> None:
    victim = tmp_path / "victim3"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    over = {"cache.disk.path": str(tmp_path / "root")}
    with CacheManager(resolve(read_files=False, overrides=over)) as m:
        models = ModelCache(m)
        models.put_model("org/tiny", {"w": np.zeros(8, np.float32)})
        view = models.model_path("org/tiny")  # a real view first: then it is replaced
        snapshots = Path(m.settings.cache("model").path) / "snapshots"
        assert view.is_relative_to(snapshots)
        shutil.rmtree(snapshots)
        link = snapshots / planted if planted else snapshots
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(victim)
        with pytest.raises(UnsafeCacheDirError) as caught:
            models.model_path("org/tiny")
        assert str(link) in str(caught.value)
        assert "symbolic link" in str(caught.value)
    assert _listing(victim) == ["keep.txt"]
    assert link.is_symlink()  # not ours to remove either
