"""The agent configuration file: values, and errors with line and field.

These need nothing from the machine (test_config_env.py checks the machine and the CLI).
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path

import pytest

from pgha.agent.config.file import (
    AgentConfig,
    AgentConfigError,
    HostPort,
    config_warnings,
    load_agent_config,
    parse_agent_config,
    parse_dcs_config,
)
from pgha.engine.config import SyncMode, WatchdogMode

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "agent-node1.yaml"
SECRETS = ("rest-secret-1", "etcd-secret-2", "super-secret-3", "repl-secret-4", "12345")

BASE = """\
scope: demo
namespace: /service/
name: node1
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8018
  authentication:
    username: admin
    password: rest-secret-1
  request_timeout: 3s
  request_deadline: 4s
  max_workers: 8
etcd3:
  hosts: [127.0.0.1:2379, 127.0.0.1:2479]
  username: pgha
  password: etcd-secret-2
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    synchronous_mode: quorum
    postgresql:
      use_pg_rewind: false
      parameters:
        wal_level: replica
        max_wal_senders: 10
        hot_standby: on
      pg_hba:
        - host replication replicator 127.0.0.1/32 trust
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: 127.0.0.1:5432
  data_dir: /srv/pg/node1
  bin_dir: /opt/pg/bin
  socket_dir: /srv/pg/run
  os_user: postgres
  authentication:
    superuser:
      username: postgres
      password: super-secret-3
    replication:
      username: replicator
      password: repl-secret-4
  parameters:
    shared_buffers: 128MB
  pg_hba:
    - local all all trust
  create_replica_methods: [pgbackrest, basebackup, mycopy]
  basebackup:
    - checkpoint: fast
    - verbose
  pgbackrest:
    stanza: demo
    keep_data: true
    archive: true
  mycopy:
    command: [/usr/local/bin/mycopy, --fast]
  callbacks:
    on_role_change: [/usr/local/bin/cb, --x]
    on_start: /usr/local/bin/started
  callback_timeout: 1m
  pg_ctl_timeout: 90
  use_unix_socket: true
watchdog:
  mode: required
  device: /run/softdog.sock
  safety_margin: -1
tags:
  nofailover: false
  failover_priority: 2
  replicatefrom: node2
log:
  level: debug
  history: /var/log/pgha/node1.jsonl
pid_file: /run/pgha-node1.pid
"""


def edit(old: str, new: str) -> str:
    """BASE with `old` (which must occur exactly once) replaced by `new`; "" deletes its lines."""
    assert BASE.count(old) == 1, old
    if not new:
        return re.sub(r"(?m)^ *" + re.escape(old), "", BASE, count=1)
    return BASE.replace(old, new)


def line_of(text: str, marker: str, nth: int | None = None) -> int:
    """The 1-based line that is `marker` (or else contains it); the `nth` one if several do."""
    lines = text.splitlines()
    found = [i for i, line in enumerate(lines, 1) if line == marker]
    found = found or [i for i, line in enumerate(lines, 1) if marker in line]
    assert len(found) == 1 or (nth is not None and len(found) > nth), (marker, found)
    return found[nth or 0]


# ---------------------------------------------------------------- a valid file


# Attribute paths of BASE's AgentConfig and their values.
EXPECTED = {
    "scope": "demo",
    "namespace": "service",
    "name": "node1",
    "source_path": "node1.yaml",
    "key_prefix": "/service/demo/",
    "restapi.listen": HostPort(host="127.0.0.1", port=8008),
    "restapi.connect_address": HostPort(host="127.0.0.1", port=8018),
    "restapi.authentication.password": "rest-secret-1",
    "restapi.request_timeout_s": 3.0,
    "restapi.request_deadline_s": 4.0,
    "restapi.max_workers": 8,
    "restapi.max_pending": 256,
    "etcd.hosts": (HostPort(host="127.0.0.1", port=2379), HostPort(host="127.0.0.1", port=2479)),
    "etcd.password": "etcd-secret-2",
    "bootstrap.dynamic.synchronous_mode": SyncMode.QUORUM,
    "bootstrap.dynamic.use_pg_rewind": False,  # lifted from dcs.postgresql
    "bootstrap.dynamic.ttl_s": 30.0,
    "bootstrap.parameters": {"wal_level": "replica", "max_wal_senders": 10, "hot_standby": True},
    "bootstrap.pg_hba": ("host replication replicator 127.0.0.1/32 trust",),
    "bootstrap.initdb": ("--encoding=UTF8", "--data-checksums"),
    "bootstrap.warnings": (),
    "postgresql.listen": HostPort(host="127.0.0.1", port=5432),
    "postgresql.connect_address": HostPort(host="127.0.0.1", port=5432),
    "postgresql.data_dir": "/srv/pg/node1",
    "postgresql.bin_dir": "/opt/pg/bin",
    "postgresql.socket_dir": "/srv/pg/run",
    "postgresql.os_user": "postgres",
    "postgresql.authentication.superuser.username": "postgres",
    "postgresql.authentication.replication.password": "repl-secret-4",
    "postgresql.authentication.rewind": None,
    "postgresql.parameters": {"shared_buffers": "128MB"},
    "postgresql.pg_hba": ("local all all trust",),
    "postgresql.create_replica_methods": ("pgbackrest", "basebackup", "mycopy"),
    "postgresql.basebackup": ("--checkpoint=fast", "--verbose"),
    "postgresql.pgbackrest.command": ("pgbackrest",),
    "postgresql.pgbackrest.stanza": "demo",
    "postgresql.pgbackrest.keep_data": True,
    "postgresql.pgbackrest.archive": True,
    "postgresql.pgbackrest.no_leader": False,
    "postgresql.callbacks.on_role_change": ("/usr/local/bin/cb", "--x"),
    "postgresql.callbacks.on_start": ("/usr/local/bin/started",),
    "postgresql.callbacks.on_stop": None,
    "postgresql.callback_timeout_s": 60.0,
    "postgresql.pg_ctl_timeout_s": 90.0,
    "postgresql.use_unix_socket": True,
    "watchdog.mode": WatchdogMode.REQUIRED,
    "watchdog.device": "/run/softdog.sock",
    "watchdog.safety_margin_s": -1.0,
    "tags.failover_priority": 2,
    "tags.replicatefrom": "node2",
    "log.level": "DEBUG",
    "log.history": "/var/log/pgha/node1.jsonl",
    "log.dir": None,
    "pid_file": "/run/pgha-node1.pid",
}


def test_complete_file_parses_to_the_expected_values() -> None:
    cfg = parse_agent_config(BASE, "node1.yaml")
    assert {path: attrgetter(path)(cfg) for path in EXPECTED} == EXPECTED
    assert cfg.postgresql.replica_methods["mycopy"].command == ("/usr/local/bin/mycopy", "--fast")
    assert cfg.watchdog.apply_to(cfg.bootstrap.dynamic).watchdog_timeout_s == 15.0
    assert json.loads(json.dumps(cfg.bootstrap.dcs_raw))["postgresql"]["use_pg_rewind"] is False


def test_defaults_of_a_minimal_file() -> None:
    cfg = parse_agent_config(MINIMAL)
    assert cfg.namespace == "service"
    assert cfg.restapi.connect_address == cfg.restapi.listen
    assert cfg.restapi.request_timeout_s == 5.0
    assert cfg.etcd.protocol == "http"
    assert cfg.bootstrap.dynamic.ttl_s == 30.0
    assert dict(cfg.bootstrap.dcs_raw) == {}
    assert cfg.postgresql.bin_dir == "/usr/lib/postgresql/15/bin"
    assert cfg.postgresql.socket_dir == "/tmp"
    assert cfg.postgresql.create_replica_methods == ("basebackup",)
    assert cfg.postgresql.pgbackrest is None
    assert (cfg.postgresql.callback_timeout_s, cfg.postgresql.pg_ctl_timeout_s) == (30.0, 60.0)
    assert cfg.watchdog.mode is WatchdogMode.AUTOMATIC
    assert (cfg.watchdog.device, cfg.watchdog.safety_margin_s) == ("/dev/watchdog", 5.0)
    assert cfg.tags.can_failover
    assert cfg.log.level == "INFO"
    assert cfg.pid_file is None


MINIMAL = """\
scope: s
name: n1
restapi: {listen: "127.0.0.1:8008"}
etcd3: {host: "127.0.0.1:2379"}
postgresql:
  listen: 127.0.0.1:5432
  data_dir: /srv/pg/n1
  authentication:
    superuser: {username: postgres}
    replication: {username: replicator}
"""


@pytest.mark.parametrize(
    ("old", "new", "check"),
    [
        ("  mode: required", "  mode: off", lambda c: c.watchdog.mode is WatchdogMode.OFF),
        ("  mode: required", "  mode: automatic", lambda c: c.watchdog.mode.value == "automatic"),
        (
            "  hosts: [127.0.0.1:2379, 127.0.0.1:2479]",
            '  hosts: "127.0.0.1:2379, 127.0.0.1:2479"',
            lambda c: [h.port for h in c.etcd.hosts] == [2379, 2479],
        ),
        ("namespace: /service/", "namespace: /a/b/", lambda c: c.namespace == "a/b"),
        ("    ttl: 30", "    ttl: 45s", lambda c: c.bootstrap.dcs_raw["ttl"] == 45),
        (
            "  listen: 127.0.0.1:5432",
            "  listen: 127.0.0.1,127.0.0.2:5432\n  connect_address: 127.0.0.2:5432",
            lambda c: c.postgresql.listen.host == "127.0.0.1,127.0.0.2",
        ),
        (
            "  listen: 127.0.0.1:8008",
            '  listen: "[::1]:8008"',
            lambda c: str(c.restapi.listen) == "[::1]:8008",
        ),
        ("  safety_margin: -1", "  safety_margin: 2s", lambda c: c.watchdog.safety_margin_s == 2),
        (
            "    - checkpoint: fast\n    - verbose",
            "    checkpoint: fast\n    max-rate: 10M",
            lambda c: c.postgresql.basebackup == ("--checkpoint=fast", "--max-rate=10M"),
        ),
    ],
    ids=["off", "automatic", "hosts", "namespace", "ttl", "multi", "ipv6", "margin", "mapping"],
)
def test_accepted_variants(old: str, new: str, check: Callable[[AgentConfig], bool]) -> None:
    assert check(parse_agent_config(edit(old, new)))


def test_example_file_is_a_valid_three_node_member() -> None:
    cfg = load_agent_config(EXAMPLE)
    assert cfg.name == "node1"
    assert len(cfg.etcd.hosts) == 3
    assert all(h.host == "127.0.0.1" for h in (*cfg.etcd.hosts, cfg.restapi.listen))
    assert cfg.postgresql.listen.port != cfg.restapi.listen.port


def test_values_are_frozen_and_passwords_hidden_from_repr() -> None:
    cfg = parse_agent_config(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.bootstrap.dcs_raw["ttl"] = 1  # type: ignore[index]
    assert not any(secret in repr(cfg) for secret in SECRETS)


# ---------------------------------------------------------------- mistakes


# One mistake per row: BASE with OLD replaced by NEW (an empty NEW deletes OLD's whole lines) fails
# at FIELD, on the line that is MARKER (or else the one line containing it; MARKER@n picks the n-th
# of several), with HINT in the error's hint. `\n` in a cell is a newline; cells are stripped.
# Columns: id | old | new | field | marker | hint
MISTAKE_TABLE = r"""
unknown-top-key | scope: demo | scpoe: demo | scpoe | scpoe | scope
unknown-dcs-key | loop_wait: 10 | loop_wiat: 10 | bootstrap.dcs.loop_wiat | loop_wiat | loop_wait
unknown-pg-key | data_dir: /srv | data_dri: /srv | postgresql.data_dri | data_dri | data_dir
missing-scope | scope: demo\n | | scope | namespace: | add 'scope'
missing-data-dir | data_dir: /srv/pg/node1\n | | postgresql.data_dir | postgresql: | postgresql
missing-replication | replication:\n      username: replicator\n      password: repl-secret-4\n | | postgresql.authentication.replication | authentication:@1 |
missing-etcd | etcd3:\n  hosts: [127.0.0.1:2379, 127.0.0.1:2479]\n  username: pgha\n  password: etcd-secret-2\n | | etcd3 | scope: demo | etcd3
bad-duration | request_timeout: 3s | request_timeout: fast | restapi.request_timeout | request_timeout |
bad-workers | max_workers: 8 | max_workers: 0 | restapi.max_workers | max_workers |
huge-workers | max_workers: 8 | max_workers: 100000 | restapi.max_workers | max_workers |
bad-deadline | request_deadline: 4s | request_deadline: -1s | restapi.request_deadline | request_deadline |
bad-duration-unit | callback_timeout: 1m | callback_timeout: 10x | postgresql.callback_timeout | callback_timeout |
negative-duration | pg_ctl_timeout: 90 | pg_ctl_timeout: -5 | postgresql.pg_ctl_timeout | pg_ctl_timeout |
wrong-type-bool | nofailover: false | nofailover: maybe | tags.nofailover | nofailover |
negative-priority | failover_priority: 2 | failover_priority: -1 | tags.failover_priority | failover_priority |
host-without-port | listen: 127.0.0.1:8008 | listen: localhost | restapi.listen | localhost |
port-out-of-range | 127.0.0.1:2479] | 127.0.0.1:99999] | etcd3.hosts[1] | 99999 | 65535
bad-comma-host | [127.0.0.1:2379, 127.0.0.1:2479] | "127.0.0.1:2379,:2479" | etcd3.hosts | ,:2479 |
https | username: pgha | protocol: https\n  username: pgha | etcd3.protocol | https | not supported
callback-shell-string | on_start: /usr/local/bin/started | on_start: /usr/local/bin/started --now | postgresql.callbacks.on_start | on_start | shell
callback-number-argument | [/usr/local/bin/cb, --x] | [/usr/local/bin/cb, 5] | postgresql.callbacks.on_role_change[1] | on_role_change |
callback-empty-list | [/usr/local/bin/cb, --x] | [] | postgresql.callbacks.on_role_change | on_role_change |
ttl-too-small | ttl: 30 | ttl: 2 | bootstrap.dcs.ttl | ttl: 2 |
ttl-bad-string | ttl: 30 | ttl: soon | bootstrap.dcs.ttl | ttl: soon |
bad-sync-mode | synchronous_mode: quorum | synchronous_mode: sometimes | bootstrap.dcs.synchronous_mode | synchronous_mode |
dcs-watchdog | ttl: 30 | ttl: 30\n    watchdog: {mode: off} | bootstrap.dcs.watchdog | watchdog: {mode | watchdog section
dcs-not-supported | ttl: 30 | ttl: 30\n    standby_cluster: {} | bootstrap.dcs.standby_cluster | standby_cluster | not supported
bad-watchdog-mode | mode: required | mode: sometimes | watchdog.mode | sometimes |
watchdog-mode-true | mode: required | mode: on | watchdog.mode | mode: on |
bad-safety-margin | safety_margin: -1 | safety_margin: -2 | watchdog.safety_margin | safety_margin |
initdb-dashes | - data-checksums | - --data-checksums | bootstrap.initdb[1] | --data-checksums | leading dashes
initdb-two-keys | - encoding: UTF8 | - encoding: UTF8\n      locale: C | bootstrap.initdb[0] | encoding: UTF8 |
initdb-forbidden | - encoding: UTF8 | - pgdata: /x | bootstrap.initdb[0].pgdata | pgdata | data_dir
initdb-not-list | initdb:\n    - encoding: UTF8\n    - data-checksums | initdb: data-checksums | bootstrap.initdb | initdb: |
bad-name | name: node1 | name: node 1 | name | name: node 1 |
numeric-name | name: node1 | name: 12 | name | name: 12 | quote
bad-namespace | namespace: /service/ | namespace: /a b/ | namespace | namespace |
relative-data-dir | data_dir: /srv/pg/node1 | data_dir: pg/node1 | postgresql.data_dir | data_dir |
method-without-section | basebackup, mycopy] | basebackup, mycopy, rsync] | postgresql.rsync | postgresql: | add 'rsync'
pgbackrest-without-stanza | stanza: demo\n | | postgresql.pgbackrest.stanza | pgbackrest: |
managed-parameter | shared_buffers: 128MB | port: 5433 | postgresql.parameters.port | port: 5433 | listen
parameter-mapping | shared_buffers: 128MB | shared_buffers: {a: 1} | postgresql.parameters.shared_buffers | shared_buffers |
local-dynamic-key | use_unix_socket: true | use_pg_rewind: true | postgresql.use_pg_rewind | use_pg_rewind: true | bootstrap.dcs
same-port | listen: 127.0.0.1:5432 | listen: 127.0.0.1,127.0.0.9:8008 | postgresql.listen | 127.0.0.9 |
wildcard-connect-address | connect_address: 127.0.0.1:8018 | connect_address: 0.0.0.0:8018 | restapi.connect_address | connect_address |
wildcard-listen-alone | listen: 127.0.0.1:5432 | listen: 0.0.0.0:5432 | postgresql.connect_address | postgresql: |
duplicate-key | username: pgha | username: pgha\n  username: other | etcd3.username | other |
etcd-v2 | etcd3: | etcd: | etcd | etcd: | etcd3
restapi-tls | request_timeout: 3s | certfile: /x.pem | restapi.certfile | certfile | not supported
bad-log-level | level: debug | level: verbose | log.level | level: verbose |
etcd-user-without-password | password: etcd-secret-2\n | | etcd3.password | etcd3: |
dcs-bool | use_pg_rewind: false | use_pg_rewind: yes please | bootstrap.dcs.postgresql.use_pg_rewind | yes please |
pg-hba-not-list | pg_hba:\n    - local all all trust | pg_hba: local all | postgresql.pg_hba | pg_hba: local all |
long-socket-dir | socket_dir: /srv/pg/run | socket_dir: /dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd | postgresql.socket_dir | socket_dir |
rewind-twice | synchronous_mode: quorum | synchronous_mode: quorum\n    use_pg_rewind: true | bootstrap.dcs.postgresql.use_pg_rewind | use_pg_rewind: false |
relative-pid-file | pid_file: /run/pgha-node1.pid | pid_file: pgha.pid | pid_file | pid_file |
password-number | password: super-secret-3 | password: 12345 | postgresql.authentication.superuser.password | 12345 | quote
password-list | password: super-secret-3 | password: [super-secret-3] | postgresql.authentication.superuser.password | [super-secret-3] |
password-empty | password: etcd-secret-2 | password: '' | etcd3.password | password: '' |
auth-given-a-secret | authentication:\n    username: admin\n    password: rest-secret-1 | authentication: rest-secret-1 | restapi.authentication | authentication: rest |
secret-reused | level: debug | level: rest-secret-1 | log.level | level: rest |
secret-in-name | name: node1 | name: etcd-secret-2 x | name | name: etcd |
"""  # noqa: E501


@dataclasses.dataclass(frozen=True)
class Mistake:
    """One row of MISTAKE_TABLE."""

    id: str
    old: str
    new: str
    field: str
    marker: str
    hint: str
    nth: int | None


def _mistakes() -> list[Mistake]:
    rows = []
    for row in MISTAKE_TABLE.strip().splitlines():
        cells = [cell.strip().replace("\\n", "\n") for cell in row.split("|")]
        id_, old, new, field, marker, hint = [*cells, ""][:6]
        marker, _, nth = marker.partition("@")
        rows.append(Mistake(id_, old, new, field, marker, hint.strip(), int(nth) if nth else None))
    return rows


MISTAKES = _mistakes()


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.id for m in MISTAKES])
def test_mistake_points_at_its_line_and_field(mistake: Mistake) -> None:
    text = edit(mistake.old, mistake.new)
    assert text != BASE
    with pytest.raises(AgentConfigError) as caught:
        parse_agent_config(text, "node1.yaml")
    err = caught.value
    assert (err.field, err.line) == (mistake.field, line_of(text, mistake.marker, mistake.nth))
    assert err.path == "node1.yaml"
    assert str(err).startswith(f"node1.yaml:{err.line}: {err.field}: expected ")
    assert mistake.hint in err.hint
    assert not any(secret in str(err) for secret in SECRETS)


@pytest.mark.parametrize(
    ("old", "new", "field", "expected"),
    [
        ("ttl: 30", "ttl: 99999999999999999999999999", "bootstrap.dcs.ttl", "from 3 to 3600"),
        ("ttl: 30", "ttl: 10000000000", "bootstrap.dcs.ttl", "from 3 to 3600"),
        ("ttl: 30", "ttl: 2h", "bootstrap.dcs.ttl", "from 3 to 3600"),
        ("ttl: 30", "ttl: .inf", "bootstrap.dcs.ttl", "a finite number"),
        ("ttl: 30", "ttl: .nan", "bootstrap.dcs.ttl", "a finite number"),
        ("ttl: 30", "ttl: " + "9" * 5000, "bootstrap.dcs.ttl", "a value"),
        ("loop_wait: 10", "loop_wait: 1e9", "bootstrap.dcs.loop_wait", "duration"),
        ("loop_wait: 10", "loop_wait: 1.0e+9", "bootstrap.dcs.loop_wait", "from 1 to 3600"),
        ("retry_timeout: 10", "retry_timeout: 2h", "bootstrap.dcs.retry_timeout", "to 3600"),
        ("ttl: 30", "ttl: 30\n    primary_start_timeout: 2d", "bootstrap.dcs", "to 86400"),
        (
            "ttl: 30",
            "ttl: 30\n    primary_start_timeout: 25h",
            "bootstrap.dcs.primary_start_timeout",
            "from 0 to 86400",
        ),
        (
            "maximum_lag_on_failover: 1048576",
            "maximum_lag_on_failover: 18446744073709551616",
            "bootstrap.dcs.maximum_lag_on_failover",
            "from 0 to 9223372036854775807",
        ),
        (
            "maximum_lag_on_failover: 1048576",
            "maximum_lag_on_failover: true",
            "bootstrap.dcs.maximum_lag_on_failover",
            "an integer",
        ),
    ],
)
def test_dcs_bounds_are_reported_with_file_field_and_expected(
    old: str, new: str, field: str, expected: str
) -> None:
    text = edit(f"    {old}", "    " + new.replace("\\n", "\n"))
    with pytest.raises(AgentConfigError) as caught:
        parse_agent_config(text, "node1.yaml")
    err = caught.value
    assert err.field.startswith(field)
    assert expected in err.expected
    assert str(err).startswith(f"node1.yaml:{err.line}: {err.field}: expected ")
    assert err.line > 0
    assert len(str(err)) < 300


def test_timeouts_that_break_the_rule_are_adjusted_with_a_warning() -> None:
    cfg = parse_agent_config(edit("    ttl: 30", "    ttl: 20"))
    dynamic = cfg.bootstrap.dynamic
    assert (dynamic.ttl_s, dynamic.loop_wait_s, dynamic.retry_timeout_s) == (20.0, 1.0, 9.0)
    assert len(cfg.bootstrap.warnings) == 1
    assert any(w.startswith("bootstrap.dcs:") for w in config_warnings(cfg))
    assert parse_agent_config(BASE).bootstrap.warnings == ()


def test_unusable_watchdog_is_a_warning() -> None:
    cfg = parse_agent_config(edit("  safety_margin: -1", "  safety_margin: 25"))
    assert any(w.startswith("watchdog:") for w in config_warnings(cfg))


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("scope: [a\nname: b\n", 2, "<yaml>"),
        ("# nothing here\n", 1, "<root>"),
        ("- a list\n", 1, "<root>"),
    ],
    ids=["syntax", "empty", "not-a-mapping"],
)
def test_documents_that_are_not_configurations(text: str, line: int, field: str) -> None:
    with pytest.raises(AgentConfigError) as caught:
        parse_agent_config(text, "f.yaml")
    assert (caught.value.line, caught.value.field) == (line, field)


def test_unreadable_file_is_an_agent_config_error(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError) as caught:
        load_agent_config(tmp_path / "missing.yaml")
    assert (caught.value.path, caught.value.field) == (str(tmp_path / "missing.yaml"), "<file>")


def test_error_survives_pickling() -> None:
    with pytest.raises(AgentConfigError) as caught:
        parse_agent_config(edit("    ttl: 30", "    ttl: 2"), "x.yaml")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.path, copy.field, str(copy)) == ("x.yaml", "bootstrap.dcs.ttl", str(caught.value))


# ---------------------------------------------------------------- /config documents


def test_dcs_raw_round_trips_through_json() -> None:
    cfg = parse_agent_config(edit("    ttl: 30", "    ttl: 40s"))
    again = parse_dcs_config(json.loads(json.dumps(cfg.bootstrap.dcs_raw)))
    assert again.dynamic == cfg.bootstrap.dynamic
    assert again.parameters == cfg.bootstrap.parameters


def test_bad_dcs_document_names_the_key() -> None:
    with pytest.raises(AgentConfigError) as caught:
        parse_dcs_config({"postgresql": {"parameters": {"port": 1}}}, "/config")
    assert (caught.value.line, caught.value.field) == (0, "postgresql.parameters.port")
