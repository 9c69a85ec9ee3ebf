# Builds the chaos harness's images offline, with a cache keyed by content hashes:
#   1. a Debian bookworm base made with debootstrap (PostgreSQL 15, etcd, HAProxy, pgBackRest,
#      iptables, libfaketime, python3 ...) and `docker import`ed as pgha-chaos-base:bookworm-<hash>;
#   2. wheels built on the host: pgha (+ its "agent" extra) and Patroni 4.1.5;
#   3. chaos/docker/Dockerfile on top of that base: pgha-chaos:<hash> and pgha-chaos:latest.
# Every step whose output (named by its hash) exists is skipped unless `force`. It protects the
# rule "a chaos run tests the code of this tree": the final tag hashes the project's sources, so an
# edited source never runs from a stale image. Everything it makes is labelled pgha.chaos=1.
"""Build the chaos images (`build_images`); chaos/image_removal.py removes them."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

IMAGE_REPO = "pgha-chaos"
BASE_REPO = "pgha-chaos-base"
LABEL = "pgha.chaos"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
PATRONI_REQUIREMENT = "patroni[etcd3,psycopg3]==4.1.5"
WHEEL_PYTHON = (3, 11)  # Debian bookworm's python3
DEFAULT_CACHE_DIR = Path("/var/cache/pgha-chaos")
DOCKER_DIR = Path(__file__).resolve().parent / "docker"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PARTS = ("pyproject.toml", "README.md", "pgha", "sim", "chaos")
# Bump when the recipe of a step changes in a way its inputs do not show.
BASE_RECIPE = "base-v1"
WHEEL_RECIPE = "wheels-v1"
STALE_IMAGE_S = 3600.0  # images of other hashes older than this are removed after a build

Progress = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """A build step failed; the message names the step (its output went to `progress`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildPaths:
    """Where the cached outputs live."""

    cache_dir: Path

    def base_tar(self, digest: str) -> Path:
        """The finished root file system tarball of a base image."""
        return self.cache_dir / f"base-{SUITE}-{digest}.tar"

    def wheels(self, kind: str, digest: str) -> Path:
        """A finished wheel directory (kind: deps, patroni, pgha)."""
        return self.cache_dir / "wheels" / f"{kind}-{digest}"


# ---------------------------------------------------------------- hashing and small helpers


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:16]


def _tree_files(root: Path, parts: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for name in parts:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
    return sorted(files)


def tree_digest(root: Path, parts: Sequence[str]) -> str:
    """Content hash of the files under `root/parts` (paths and bytes)."""
    chunks: list[bytes] = []
    for path in _tree_files(root, parts):
        chunks += [str(path.relative_to(root)).encode(), path.read_bytes()]
    return _digest(*chunks)


def packages() -> list[str]:
    """The Debian packages of the image (chaos/docker/packages.txt)."""
    lines = (DOCKER_DIR / "packages.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def agent_requirements(root: Path = PROJECT_ROOT) -> list[str]:
    """pgha's own dependencies plus those of its `agent` extra, from pyproject.toml."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [*project.get("dependencies", []), *project["optional-dependencies"]["agent"]]


def _run(argv: Sequence[str], *, progress: Progress, step: str, cwd: Path | None = None) -> None:
    """Run a command, streaming its merged output lines to `progress`."""
    progress(f"[{step}] $ {' '.join(argv)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            progress(f"[{step}] {line.rstrip()}")
        code = proc.wait()
    if code != 0:
        raise ImageBuildError(f"{step}: {argv[0]} exited with {code}")


@contextlib.contextmanager
def cache_lock(cache_dir: Path) -> Iterator[None]:
    """One build at a time on this machine (tests and the harness may build concurrently)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def docker_client() -> Any:
    import docker  # the `chaos` extra; imported late so `import chaos.image` works without it

    return docker.from_env(timeout=600)


def _image_exists(client: Any, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


# ---------------------------------------------------------------- 1. the debootstrap base

_CHROOT_SCRIPT = """set -eu
cat > /etc/dpkg/dpkg.cfg.d/01-pgha-nodoc <<EOF
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
mkdir -p /etc/postgresql-common
echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
cat > /etc/apt/sources.list <<EOF
deb {mirror} {suite} main
deb {mirror} {suite}-updates main
deb {security} {suite}-security main
EOF
apt-get update
apt-get install -y --no-install-recommends \\
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {packages}
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /tmp/*
ls /usr/lib/postgresql/15/bin/postgres /usr/bin/etcd /usr/lib/x86_64-linux-gnu/faketime
"""


def base_digest() -> str:
    """Hash of everything the base image is made of."""
    return _digest(BASE_RECIPE, SUITE, MIRROR, SECURITY_MIRROR, _CHROOT_SCRIPT, *packages())


def _unmount_under(root: Path) -> None:
    """Unmount whatever an interrupted build left mounted below `root` (before deleting it: a
    recursive delete must never walk into a mounted /proc or a bind-mounted device)."""
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts]
    prefix = str(root.resolve()) + "/"
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def _fresh_dir(path: Path) -> None:
    """Remove `path` (unmounting what is mounted below it first)."""
    if path.exists():
        _unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)


def _make_rootfs_tar(paths: BuildPaths, digest: str, progress: Progress) -> Path:
    """debootstrap + chroot apt-get install, tarred; reuses a finished tarball."""
    tar_path = paths.base_tar(digest)
    rootfs = paths.cache_dir / f"rootfs-{digest}"
    _fresh_dir(rootfs)
    step = "base"
    script = _CHROOT_SCRIPT.format(
        mirror=MIRROR, security=SECURITY_MIRROR, suite=SUITE, packages=" ".join(packages())
    )
    try:
        _run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), MIRROR],
             progress=progress, step=step)  # fmt: skip
        shutil.copyfile("/etc/resolv.conf", rootfs / "etc/resolv.conf")
        _run(["mount", "-t", "proc", "proc", str(rootfs / "proc")], progress=progress, step=step)
        _run(["chroot", str(rootfs), "/bin/sh", "-c", script], progress=progress, step=step)
    finally:
        _unmount_under(rootfs)
    (rootfs / "etc/resolv.conf").write_text("", encoding="ascii")  # docker mounts its own
    partial = tar_path.with_suffix(".partial")
    _run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."],
         progress=progress, step=step)  # fmt: skip
    partial.rename(tar_path)
    _fresh_dir(rootfs)
    return tar_path


def build_base(client: Any, paths: BuildPaths, *, progress: Progress, force: bool) -> str:
    """The base image's tag, made (debootstrap + import) unless it exists."""
    digest = base_digest()
    tag = f"{BASE_REPO}:{SUITE}-{digest}"
    if not force and _image_exists(client, tag):
        progress(f"[base] {tag} exists, reused")
        return tag
    tar_path = paths.base_tar(digest)
    if force or not tar_path.exists():
        if os.geteuid() != 0:
            raise ImageBuildError("base: debootstrap, chroot and mount need root")
        tar_path = _make_rootfs_tar(paths, digest, progress)
    else:
        progress(f"[base] root file system {tar_path} reused")
    progress(f"[base] docker import {tar_path.name} as {tag}")
    changes = [
        f"LABEL {LABEL}=1",
        f"LABEL {LABEL}.base={SUITE}-{digest}",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
    ]
    client.api.import_image(
        src=str(tar_path), repository=BASE_REPO, tag=f"{SUITE}-{digest}", changes=changes
    )
    return tag


# ---------------------------------------------------------------- 2. wheels built on the host


def wheel_python() -> str:
    """A CPython 3.11 (bookworm's python3) whose pip builds wheels the image can install."""
    if sys.version_info[:2] == WHEEL_PYTHON:
        return sys.executable
    found = shutil.which("python{}.{}".format(*WHEEL_PYTHON))
    if found is None:
        raise ImageBuildError("wheels: no python3.11 on this machine (the image's python is 3.11)")
    return found


def _pip_wheel(
    paths: BuildPaths, kind: str, requirements: Sequence[str], *, progress: Progress, force: bool
) -> Path:
    """A directory of wheels for `requirements` (with dependencies) and a requirements.txt."""
    python = wheel_python()
    digest = _digest(WHEEL_RECIPE, python, *requirements)
    out = paths.wheels(kind, digest)
    if out.is_dir() and not force:
        progress(f"[wheels] {kind}: {out} reused")
        return out
    shutil.rmtree(out, ignore_errors=True)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    argv = [python, "-m", "pip", "wheel", "--disable-pip-version-check", "-w", str(partial)]
    _run([*argv, "-r", str(partial / "requirements.txt")], progress=progress, step="wheels")
    partial.rename(out)
    return out


def project_digest(root: Path = PROJECT_ROOT) -> str:
    """Hash of the sources that go into the pgha wheel."""
    return tree_digest(root, PROJECT_PARTS)


def _project_wheel(paths: BuildPaths, root: Path, *, progress: Progress, force: bool) -> Path:
    """The pgha wheel (no dependencies), built from a clean copy of the project's sources."""
    out = paths.wheels("pgha", project_digest(root))
    if out.is_dir() and not force:
        progress(f"[wheels] pgha: {out} reused")
        return out
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="pgha-src-") as tmp:
        src = Path(tmp) / "src"
        for path in _tree_files(root, PROJECT_PARTS):  # no build/ or egg-info in the work tree
            target = src / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        partial = Path(tmp) / "wheel"
        argv = [wheel_python(), "-m", "pip", "wheel", "--disable-pip-version-check", "--no-deps"]
        _run([*argv, "-w", str(partial), str(src)], progress=progress, step="wheels")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(partial, out)
    return out


# ---------------------------------------------------------------- 3. the Dockerfile


def _stream_build(
    client: Any, context: Path, tag: str, base: str, *, progress: Progress, nocache: bool
) -> None:
    """docker build, its output lines to `progress`; raises on a build error."""
    stream = client.api.build(
        path=str(context),
        tag=tag,
        buildargs={"BASE": base},
        labels={LABEL: "1"},
        rm=True,
        forcerm=True,
        pull=False,
        nocache=nocache,
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            raise ImageBuildError(f"docker build: {chunk['error'].strip()}")
        for line in str(chunk.get("stream", "")).splitlines():
            if line.strip():
                progress(f"[build] {line.rstrip()}")


def _context(tmp: Path, wheel_dirs: dict[str, Path]) -> Path:
    context = tmp / "context"
    shutil.copytree(DOCKER_DIR, context, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name, source in wheel_dirs.items():
        shutil.copytree(source, context / f"wheels-{name}")
    return context


def build_images(
    *,
    progress: Progress,
    force: bool = False,
    base: str | None = None,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    project_root: Path = PROJECT_ROOT,
) -> str:
    """Build (or reuse) the chaos image; returns its content-hash tag `pgha-chaos:<hash>`.

    `pgha-chaos:latest` is moved to it too. `base` (e.g. "debian:bookworm" where a registry is
    reachable) replaces the debootstrap base. `force` redoes every step.
    """
    if not (project_root / "pyproject.toml").is_file():
        raise ImageBuildError(f"no pyproject.toml in {project_root}: build from a source tree")
    paths = BuildPaths(cache_dir=cache_dir)
    client = docker_client()
    with cache_lock(cache_dir):
        base_ref = base or build_base(client, paths, progress=progress, force=force)
        wheel_dirs = _wheels(paths, project_root, progress=progress, force=force)
        tag = _final_image(client, base_ref, wheel_dirs, progress=progress, force=force)
        keep = {*wheel_dirs.values(), paths.base_tar(base_digest())}
        prune_cache(cache_dir, keep=keep)
        _prune_old_images(client, keep={tag, base_ref}, progress=progress)
    return tag


def _wheels(
    paths: BuildPaths, project_root: Path, *, progress: Progress, force: bool
) -> dict[str, Path]:
    """The wheel directories the Dockerfile installs from: Patroni, pgha's dependencies, pgha."""
    return {
        "patroni": _pip_wheel(
            paths, "patroni", [PATRONI_REQUIREMENT], progress=progress, force=force
        ),
        "deps": _pip_wheel(
            paths, "deps", agent_requirements(project_root), progress=progress, force=force
        ),
        "pgha": _project_wheel(paths, project_root, progress=progress, force=force),
    }


def _final_image(
    client: Any, base_ref: str, wheel_dirs: dict[str, Path], *, progress: Progress, force: bool
) -> str:
    """The Dockerfile's image on `base_ref` with the wheels, built unless its tag exists (or
    `force`), tagged latest too. Its tag hashes the base, the Dockerfile's directory and the
    wheels."""
    digest = _digest(
        base_ref,
        tree_digest(DOCKER_DIR, ["."]),
        *(str(path.name) for path in wheel_dirs.values()),
    )
    tag = f"{IMAGE_REPO}:{digest}"
    if force or not _image_exists(client, tag):
        with tempfile.TemporaryDirectory(prefix="pgha-chaos-ctx-") as tmp:
            context = _context(Path(tmp), wheel_dirs)
            _stream_build(client, context, tag, base_ref, progress=progress, nocache=force)
    else:
        progress(f"[build] {tag} exists, reused")
    client.api.tag(tag, IMAGE_REPO, "latest")
    progress(f"[build] tagged {tag} and {IMAGE_REPO}:latest")
    return tag


def _prune_old_images(client: Any, *, keep: set[str], progress: Progress) -> None:
    """Untag images of earlier builds (other hashes) made over an hour ago and used by no
    container: docker refuses to remove an image a container uses, and the hour spares a build
    another session made moments ago and is about to start containers from."""
    import docker.errors

    cutoff = time.time() - STALE_IMAGE_S
    for image in client.images.list(filters={"label": f"{LABEL}=1"}):
        created = image.attrs.get("Created", "")
        if _created_epoch(created) > cutoff:
            continue
        for old in image.tags:
            if old in keep or old == f"{IMAGE_REPO}:latest":
                continue
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(old)
                progress(f"[build] removed old image {old}")


def _created_epoch(created: str) -> float:
    """Docker's "Created" (RFC 3339 with nanoseconds) as epoch seconds; now when unreadable."""
    try:
        return datetime.fromisoformat(created[:19]).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return time.time()


def prune_cache(cache_dir: Path, *, keep: set[Path]) -> None:
    """Delete cached outputs other than `keep` (old base tarballs, old wheel directories)."""
    candidates = [*cache_dir.glob("base-*"), *cache_dir.glob("rootfs-*")]
    if (cache_dir / "wheels").is_dir():
        candidates += (cache_dir / "wheels").iterdir()
    for path in candidates:
        if path in keep:
            continue
        if path.is_dir():
            _fresh_dir(path)
        else:
            path.unlink(missing_ok=True)
