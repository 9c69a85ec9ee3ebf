"""`pgha ctl` against a real etcd (tests/agent/etcd_cluster.py): show-config, edit-config (options,
files, $EDITOR, lost compare-and-sets), pause and resume. `Env` and the fixtures are shared with
test_ctl_rest.py, where members' REST APIs come in.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgha.agent.etcd.admin import EtcdAdmin
from pgha.agent.etcd.session import EtcdSettings
from pgha.ctl.common import CtlError
from pgha.ctl.config import store_config
from pgha.ctl.main import run
from tests.agent.etcd_cluster import EtcdCluster
from tests.agent.test_ctl import ctl, write_config

pytestmark = pytest.mark.agent

AUTH = ("admin", "s3cret")
CONFIG = {"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100}}}


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    with EtcdCluster.running(size=1) as cluster:
        yield cluster


@dataclass
class Env:
    """One cluster scope in the shared etcd: its admin, a ctl config file and a runner."""

    etcd: EtcdCluster
    scope: str
    admin: EtcdAdmin
    config: Path

    def put(self, key: str, value: object) -> None:
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.admin.session.put(f"/service/{self.scope}/{key}".encode(), data, what="test")

    def delete(self, key: str) -> None:
        self.admin.session.delete(f"/service/{self.scope}/{key}".encode(), what="test")

    def ctl(self, *argv: str, **kwargs: Any) -> tuple[int, str, str]:
        code, out, err = ctl(["-c", str(self.config), *argv], **kwargs)
        assert "Traceback" not in err
        return code, out, err

    def stored(self) -> dict[str, Any]:
        return self.admin.raw_config()[0]


@contextlib.contextmanager
def scoped_env(etcd: EtcdCluster, tmp_path: Path) -> Iterator[Env]:
    """A fresh cluster scope in `etcd` with its admin (closed on the way out) and config file."""
    scope = f"ctl-{uuid.uuid4().hex[:8]}"
    admin = EtcdAdmin(EtcdSettings(hosts=tuple(etcd.endpoints), scope=scope))
    config = write_config(tmp_path / "agent.yaml", hosts=etcd.endpoints, scope=scope, auth=AUTH)
    try:
        yield Env(etcd=etcd, scope=scope, admin=admin, config=config)
    finally:
        admin.close()


@pytest.fixture
def env(etcd: EtcdCluster, tmp_path: Path) -> Iterator[Env]:
    with scoped_env(etcd, tmp_path) as scoped:
        yield scoped


# ---------------------------------------------------------------- show-config and edit-config


def test_show_config_and_edit_config_round_trip(env: Env) -> None:
    code, _, err = env.ctl("show-config")
    assert code == 1
    assert "no /config" in err
    assert env.admin.replace_config(CONFIG, None)
    code, out, _ = env.ctl("show-config", "-f", "json")
    assert (code, json.loads(out)) == (0, CONFIG)
    code, out, _ = env.ctl(
        "edit-config",
        "--set",
        "ttl=40",
        "--set",
        "loop_wait=null",
        "--set",
        "postgresql.use_pg_rewind=true",
        "--pg",
        "max_connections=200",
        "--pg",
        "work_mem=8MB",
        "--force",
    )
    assert code == 0
    expected = {
        "ttl": 40,
        "postgresql": {
            "parameters": {"max_connections": 200, "work_mem": "8MB"},
            "use_pg_rewind": True,
        },
    }
    assert env.stored() == expected
    assert "-ttl: 30" in out.splitlines()
    assert "+ttl: 40" in out.splitlines()
    code, out, _ = env.ctl("show-config")
    assert (code, yaml.safe_load(out)) == (0, expected)
    code, out, _ = env.ctl("edit-config", "--set", "ttl=40", "--force")
    assert (code, out.strip().splitlines()[-1]) == (0, "Not changed")


def test_edit_config_refuses_an_invalid_result_and_writes_nothing(env: Env) -> None:
    assert env.admin.replace_config(CONFIG, None)
    version = env.admin.raw_config()[1]
    for change in (["--set", "ttl=soon"], ["--set", "bogus_key=1"], ["--pg", "port=5433"]):
        code, _, err = env.ctl("edit-config", *change, "--force")
        assert code == 2
        assert "invalid configuration" in err
    assert env.admin.raw_config() == (CONFIG, version)


def test_edit_config_asks_before_writing(env: Env) -> None:
    assert env.admin.replace_config(CONFIG, None)
    code, out, err = env.ctl("edit-config", "--set", "ttl=40")  # no terminal, no --force
    assert code == 2
    assert "--force" in err
    assert "+ttl: 40" in out  # the diff is shown before refusing
    code, _, _ = env.ctl("edit-config", "--set", "ttl=40", interactive=True, stdin="n\n")
    assert code == 1
    assert env.stored() == CONFIG
    code, _, _ = env.ctl("edit-config", "--set", "ttl=40", interactive=True, stdin="y\n")
    assert code == 0
    assert env.stored()["ttl"] == 40


def test_edit_config_apply_and_replace_files(env: Env, tmp_path: Path) -> None:
    assert env.admin.replace_config(CONFIG, None)
    patch = tmp_path / "patch.yaml"
    patch.write_text("loop_wait: 5\npostgresql:\n  parameters:\n    max_connections: null\n")
    assert env.ctl("edit-config", "--apply", str(patch), "--force")[0] == 0
    assert env.stored() == {"ttl": 30, "loop_wait": 5, "postgresql": {"parameters": {}}}
    assert env.ctl("edit-config", "--apply", "-", "--force", stdin="pause: true\n")[0] == 0
    assert env.stored()["pause"] is True
    replacement = tmp_path / "new.yaml"
    replacement.write_text("ttl: 25\nretry_timeout: 5\n")
    assert env.ctl("edit-config", "--replace", str(replacement), "--force")[0] == 0
    assert env.stored() == {"ttl": 25, "retry_timeout": 5}


def test_edit_config_with_an_editor(env: Env, tmp_path: Path) -> None:
    assert env.admin.replace_config(CONFIG, None)
    script = tmp_path / "editor.py"
    script.write_text(
        "import sys, yaml\n"
        "path = sys.argv[1]\n"
        "doc = yaml.safe_load(open(path))\n"
        "doc['ttl'] = 45\n"
        "del doc['loop_wait']\n"
        "open(path, 'w').write(yaml.safe_dump(doc))\n"
    )
    editor = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    code, out, _ = env.ctl("edit-config", interactive=True, stdin="y\n", EDITOR=editor)
    assert code == 0
    assert "+ttl: 45" in out.splitlines()
    assert env.stored() == {"ttl": 45, "postgresql": CONFIG["postgresql"]}
    failing = f"{shlex.quote(sys.executable)} -c 'raise SystemExit(3)'"
    code, _, err = env.ctl("edit-config", interactive=True, stdin="y\n", EDITOR=failing)
    assert code == 1
    assert "status 3" in err
    assert env.stored()["ttl"] == 45


class ConcurrentStdin(io.StringIO):
    """Answers "y" to every confirmation, but first runs `meanwhile` (the first `times` times):
    another operator's write landing between our read of /config and our compare-and-set."""

    def __init__(self, meanwhile: Callable[[], None], times: int) -> None:
        super().__init__()
        self.meanwhile, self.left, self.asked = meanwhile, times, 0

    def readline(self, size: int | None = -1) -> str:
        del size
        self.asked += 1
        if self.left > 0:
            self.left -= 1
            self.meanwhile()
        return "y\n"


def test_a_lost_compare_and_set_is_merged_again(env: Env) -> None:
    assert env.admin.replace_config(CONFIG, None)

    def other_operator() -> None:
        raw, version = env.admin.raw_config()
        assert env.admin.replace_config({**raw, "loop_wait": 7}, version)

    stdin = ConcurrentStdin(other_operator, times=1)
    out, err = io.StringIO(), io.StringIO()
    code = run(
        ["-c", str(env.config), "edit-config", "--set", "ttl=40"],
        stdin=stdin,
        stdout=out,
        stderr=err,
        interactive=True,
        environ={},
    )
    assert code == 0, err.getvalue()
    assert stdin.asked == 2  # the merged result was shown and confirmed again
    assert env.stored() == {**CONFIG, "ttl": 40, "loop_wait": 7}


def test_losing_every_compare_and_set_gives_up(env: Env) -> None:
    assert env.admin.replace_config(CONFIG, None)
    counter = iter(range(100))

    def meanwhile(old: Any, new: Any, checked: Any) -> None:
        raw, version = env.admin.raw_config()
        assert env.admin.replace_config({**raw, "loop_wait": 1 + next(counter)}, version)

    with pytest.raises(CtlError) as caught:
        store_config(env.admin, lambda raw: {**raw, "ttl": 40}, meanwhile, attempts=3)
    assert caught.value.code == 1
    assert env.stored()["ttl"] == 30


# ---------------------------------------------------------------- pause and resume


def test_pause_and_resume_flip_pause_in_config(env: Env) -> None:
    for argv in (["pause"], ["resume"], ["edit-config", "--set", "ttl=40", "--force"]):
        code, _, err = env.ctl(*argv)  # never create /config before the cluster bootstraps
        assert code == 1
        assert "no /config" in err
    assert env.admin.raw_config() == ({}, None)
    assert env.admin.replace_config(CONFIG, None)
    assert env.ctl("pause")[0] == 0
    assert env.stored() == {**CONFIG, "pause": True}
    code, _, err = env.ctl("pause")
    assert code == 1
    assert "already paused" in err
    assert env.ctl("resume")[0] == 0
    assert env.stored() == CONFIG
    assert env.ctl("resume")[0] == 1
