"""Fixtures of the Docker chaos tests: a Docker client, the image (built once per session, reused
by content hash), and labelled networks with explicit subnets that are removed afterwards."""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chaos.image import build_images, project_digest

LABEL = "pgha.chaos"
TEST_SUBNETS = ipaddress.ip_network("172.30.128.0/17")  # tests take /24s from the top down


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageBuild:
    """The session's image: its tag, and how long building it took, first and again (cached)."""

    tag: str
    build_s: float
    cached_build_s: float
    sources_changed: bool  # someone edited the sources between the two builds (tags differ)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of the local dockerd; the chaos tests are skipped without one."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as error:  # no socket, no daemon, no permission
        if os.environ.get("CI"):  # CI starts dockerd itself (.ci/run): its absence is a failure
            pytest.fail(f"Docker is not available in CI: {error}")
        pytest.skip(f"Docker is not available: {error}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def chaos_image_build(docker_client: Any) -> ImageBuild:
    """Build (or reuse, by content hash) the chaos image once per session, then build again."""
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        if line.startswith(("[base] $", "[wheels] $", "[build] Step", "[base] docker import")):
            print(line[:160], file=sys.stderr, flush=True)

    sources = project_digest()
    started = time.monotonic()
    build_images(progress=progress)
    build_s = time.monotonic() - started
    started = time.monotonic()
    tag = build_images(progress=lines.append)  # everything cached now
    return ImageBuild(
        tag=tag,
        build_s=build_s,
        cached_build_s=time.monotonic() - started,
        sources_changed=project_digest() != sources,
    )


@pytest.fixture(scope="session")
def chaos_image(chaos_image_build: ImageBuild) -> str:
    """The chaos image's content-hash tag (`pgha-chaos:<hash>`; `pgha-chaos:latest` too)."""
    return chaos_image_build.tag


def _used_subnets(client: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    used = []
    for network in client.networks.list():
        for pool in (network.attrs.get("IPAM") or {}).get("Config") or []:
            if pool.get("Subnet"):
                used.append(ipaddress.ip_network(pool["Subnet"], strict=False))
    return used


def create_test_network(client: Any, run_id: str) -> tuple[Any, ipaddress.IPv4Network]:
    """A bridge network labelled for `pgha chaos down`, on a free /24 of 172.30.128.0/17."""
    from docker.types import IPAMConfig, IPAMPool

    for subnet in reversed(list(TEST_SUBNETS.subnets(new_prefix=24))):
        if any(subnet.overlaps(used) for used in _used_subnets(client)):
            continue
        gateway = str(next(subnet.hosts()))
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=gateway)])
        try:
            network = client.networks.create(
                f"pgha-{run_id}", driver="bridge", ipam=ipam,
                labels={LABEL: "1", f"{LABEL}.run": run_id},
            )  # fmt: skip
        except Exception as error:  # another test or run took it meanwhile: try the next
            if "overlap" in str(error).lower():
                continue
            raise
        assert isinstance(subnet, ipaddress.IPv4Network)
        return network, subnet
    raise RuntimeError("no free /24 in 172.30.128.0/17")


@pytest.fixture
def chaos_network(docker_client: Any) -> Iterator[tuple[Any, ipaddress.IPv4Network, str]]:
    """(network, subnet, run id); the network and every container of the run are removed after."""
    run_id = f"t{secrets.token_hex(4)}"
    network, subnet = create_test_network(docker_client, run_id)
    yield network, subnet, run_id
    for container in docker_client.containers.list(
        all=True, filters={"label": f"{LABEL}.run={run_id}"}
    ):
        container.remove(force=True, v=True)
    network.remove()
