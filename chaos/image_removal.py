# Removes what chaos/image.py builds: every image labelled pgha.chaos=1 (or a narrower label, for
# the tests) and, if asked, the build cache. An image a container still uses cannot go: the others
# are removed first, then the refusals are reported together. Removing the final image can leave
# its untagged base dangling, so the images are listed again (up to five times).
"""Remove the chaos images (`remove_images`) and, if asked, empty the build cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.image import (
    BASE_REPO,
    DEFAULT_CACHE_DIR,
    LABEL,
    ImageBuildError,
    Progress,
    cache_lock,
    docker_client,
    prune_cache,
)


def remove_images(
    *,
    progress: Progress | None = None,
    purge_cache: bool = False,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    label: str = f"{LABEL}=1",
) -> list[str]:
    """Remove every image labelled pgha.chaos=1 (their containers must be gone); the tags removed.

    Raises ImageBuildError naming the images that could not be removed (e.g. still used by a
    container) after removing all the others. With `purge_cache`, the cache directory (root file
    system tarballs, wheels) is emptied too. `label` narrows the selection (tests).
    """
    say = progress or (lambda _line: None)
    removed, failed = _remove_labelled(docker_client(), label, say)
    if purge_cache and cache_dir.exists():
        with cache_lock(cache_dir):
            prune_cache(cache_dir, keep=set())
        say(f"emptied {cache_dir}")
    if failed:
        raise ImageBuildError(
            "could not remove " + "; ".join(f"{tag}: {why}" for tag, why in failed.items())
        )
    return removed


def _remove_labelled(client: Any, label: str, say: Progress) -> tuple[list[str], dict[str, str]]:
    """Remove the images carrying `label`, derived images first: (the tags removed, tag -> why
    docker refused it)."""
    import docker.errors

    removed: list[str] = []
    failed: dict[str, str] = {}
    for _ in range(5):  # a removed image can leave its untagged base dangling: list again
        images = client.images.list(filters={"label": label})
        # Derived images first: the final image before the base it was built on.
        images.sort(key=lambda img: BASE_REPO in " ".join(img.tags))
        todo = [tag for img in images for tag in img.tags or [img.id] if tag not in failed]
        if not todo:
            break
        for tag in todo:
            try:
                client.images.remove(tag)
            except docker.errors.APIError as error:
                failed[tag] = str(error.explanation or error)
                continue
            removed.append(tag)
            say(f"removed image {tag}")
    return removed, failed
