# A data disk of its own for each database node, so that `disk_full` can really fill the file
# system PostgreSQL writes to (ENOSPC) without touching the Docker host's disk: a sparse ext4 image
# on the host, attached to a loop device and mounted into the container as a Docker volume at
# /var/lib/pgha. The volume survives `docker kill` + `docker start` (a reboot keeps the data).
# Safety rule protected: cleanup only detaches loop devices whose backing file is one of ours
# (named in the volume's labels), never a device somebody else attached.
"""Loop-device data volumes for disk_full faults (host side; needs root and losetup)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

DISK_SIZE_B = 2 * 1024**3  # sparse: only what PostgreSQL writes takes room on the host
LABEL_LOOP = "pgha.chaos.loop"
LABEL_FILE = "pgha.chaos.disk"


def loop_devices_available() -> bool:
    """True when this process can make loop-device file systems (root, losetup, mkfs.ext4)."""
    return (
        os.geteuid() == 0
        and Path("/dev/loop-control").exists()
        and shutil.which("losetup") is not None
        and shutil.which("mkfs.ext4") is not None
    )


def disk_dir(run_id: str) -> Path:
    """Where a run's disk images live on the host."""
    return Path(tempfile.gettempdir()) / "pgha-chaos" / run_id


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return done.stdout.strip()


def create_data_volume(
    client: Any, *, run_id: str, node: str, owner: tuple[int, int], labels: dict[str, str]
) -> str:
    """Create the ext4 image, its loop device and the Docker volume; returns the volume's name.

    `owner` (uid, gid) owns the file system's root (PostgreSQL's user in the image).
    """
    directory = disk_dir(run_id)
    directory.mkdir(parents=True, exist_ok=True)
    image = directory / f"{node}.ext4"
    with image.open("wb") as handle:
        handle.truncate(DISK_SIZE_B)
    root_owner = f"root_owner={owner[0]}:{owner[1]}"
    _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", root_owner, str(image)])
    device = _run(["losetup", "--find", "--show", str(image)])
    name = f"pgha-{run_id}-{node}-data"
    client.volumes.create(
        name=name,
        driver="local",
        driver_opts={"type": "ext4", "device": device},
        labels={**labels, LABEL_LOOP: device, LABEL_FILE: str(image)},
    )
    return name


def remove_data_volume(volume: Any) -> None:
    """Remove a data volume, detach its loop device and delete its image (best effort)."""
    labels = volume.attrs.get("Labels") or {}
    with contextlib.suppress(Exception):
        volume.remove(force=True)
    detach(labels.get(LABEL_LOOP), labels.get(LABEL_FILE))


def detach(device: str | None, image: str | None) -> None:
    """Detach `device` if it is backed by `image`, then delete `image`."""
    if device and image and shutil.which("losetup"):
        with contextlib.suppress(Exception):
            backing = _run(["losetup", "--noheadings", "--output", "BACK-FILE", device])
            if backing == image:
                _run(["losetup", "--detach", device])
    if image:
        Path(image).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            Path(image).parent.rmdir()


FILL_SCRIPT = """
set -u
d=/var/lib/pgha
avail=$(( $(stat -f -c '%a' "$d") * $(stat -f -c '%S' "$d") ))
fallocate -l "$avail" "$d/.chaos-fill" 2>/dev/null \
  || fallocate -l $(( avail - 16777216 )) "$d/.chaos-fill" 2>/dev/null || true
dd if=/dev/zero of="$d/.chaos-fill-1" bs=65536 2>/dev/null
dd if=/dev/zero of="$d/.chaos-fill-2" bs=1024 2>/dev/null
sync
stat -f -c '%a' "$d"
"""
FREE_SCRIPT = (
    "rm -f /var/lib/pgha/.chaos-fill /var/lib/pgha/.chaos-fill-1 /var/lib/pgha/.chaos-fill-2"
)
