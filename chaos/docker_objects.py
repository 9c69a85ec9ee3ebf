# The Docker objects of the chaos harness, through the Docker SDK and found by label: every network,
# container and volume carries `pgha.chaos=1` and `pgha.chaos.run=<run id>`, so a run's objects (or
# every run's) can be removed even after a crash of the harness. Networks take an explicit /24 from
# 172.30.0.0/16 that no other Docker network uses; containers get their files put in before they
# start. What these objects are for (which hosts, which files, when the cluster is healthy) is
# chaos/cluster.py's: this module knows Docker, not the cluster.
"""Labelled Docker networks, containers and volumes: subnets, creation, files, removal."""

from __future__ import annotations

import contextlib
import io
import ipaddress
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chaos import disks
from chaos.configs import DATA_ROOT, Layout

LABEL = "pgha.chaos"
LABEL_RUN = "pgha.chaos.run"
LABEL_ROLE = "pgha.chaos.role"  # node, etcd, haproxy
LABEL_HOST = "pgha.chaos.host"
SUBNET_POOL = "172.30.0.0/16"  # runs take /24s from here (docs/design.md: 172.28.0.0/14)


def _used_subnets(client: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    used = []
    for net in client.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if cfg.get("Subnet"):
                used.append(ipaddress.ip_network(cfg["Subnet"], strict=False))
    return used


def free_subnets(client: Any) -> list[str]:
    """The /24s of 172.30.0.0/16 that no Docker network uses yet, in order."""
    used = _used_subnets(client)
    pool = ipaddress.ip_network(SUBNET_POOL).subnets(new_prefix=24)
    return [str(net) for net in pool if not any(net.overlaps(u) for u in used)]


def ipam(subnet: str, gateway: str) -> Any:
    """The IPAM configuration of a network on `subnet` with `gateway`."""
    from docker.types import IPAMConfig, IPAMPool

    return IPAMConfig(pool_configs=[IPAMPool(subnet=subnet, gateway=gateway)])


def _tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(content), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def untar_one(chunks: Any) -> bytes:
    """The content of the first file of a tar stream (Docker's `get_archive`)."""
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member is not None else None
        return handle.read() if handle is not None else b""


def image_file(client: Any, image: str, path: str, labels: Mapping[str, str]) -> bytes:
    """A file of `image`, read from a container created (never started) and removed for it."""
    probe = client.containers.create(image, command=["true"], labels=labels)
    try:
        return untar_one(probe.get_archive(path)[0])
    finally:
        probe.remove(force=True)


def create_container(
    client: Any,
    image: str,
    layout: Layout,
    host: str,
    *,
    labels: Mapping[str, str],
    command: Sequence[str],
    files: Mapping[str, bytes],
    volume: str | None = None,
) -> None:
    """Create (not start) `host`'s container on the run's network at its address, with `files`
    put in and `volume` mounted at the data root."""
    endpoint = client.api.create_endpoint_config(ipv4_address=layout.ip(host), aliases=[host])
    container = client.containers.create(
        image,
        command=list(command),
        name=layout.container(host),
        hostname=host,
        labels=labels,
        cap_add=["NET_ADMIN"],
        network=layout.network,
        networking_config={layout.network: endpoint},
        volumes={volume: {"bind": DATA_ROOT, "mode": "rw"}} if volume else None,
    )
    if files:
        container.put_archive("/", _tar(files))


# ---------------------------------------------------------------- removal


def _filters(labels: Mapping[str, str]) -> dict[str, list[str]]:
    return {"label": [f"{key}={value}" for key, value in labels.items()]}


def remove_labelled(client: Any, labels: Mapping[str, str]) -> dict[str, int]:
    """Remove the containers, networks and volumes carrying `labels`; counts of each."""
    filters = _filters(labels)
    containers = client.containers.list(all=True, filters=filters)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda c: _quietly(lambda: c.remove(force=True, v=True)), containers))
    networks = client.networks.list(filters=filters)
    for net in networks:
        _quietly(net.remove)
    volumes = client.volumes.list(filters=filters)
    for volume in volumes:
        disks.remove_data_volume(volume)
    return {"containers": len(containers), "networks": len(networks), "volumes": len(volumes)}


def _quietly(action: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):
        action()


def down_all(client: Any, images: bool = False) -> dict[str, int]:
    """Remove every object labelled pgha.chaos=1 (every run's), and the images too if asked."""
    counts = remove_labelled(client, {LABEL: "1"})
    counts["images"] = 0
    if images:
        for image in client.images.list(filters=_filters({LABEL: "1"})):
            with contextlib.suppress(Exception):
                client.images.remove(image.id, force=True)
                counts["images"] += 1
    return counts
