"""The real agent: the loop driver and its composition root, with one sub-package per outside
world it talks to.

- :mod:`pgha.agent.config`: the configuration file, read once into frozen values.
- :mod:`pgha.agent.etcd`: the DCS port over etcd v3 (session, key codec, lock, operator writes).
- :mod:`pgha.agent.pg`: the PostgreSQL port (pg_ctl, SQL, configuration files, clone, rewind).
- :mod:`pgha.agent.rest`: the REST API (wire format, server, read and write endpoints).
- :mod:`pgha.agent.watchdog`: the watchdog device and its emulation.

The modules here join them: `compose` builds the ports, `runner` drives the shared loop,
`main` is `pgha agent`, `admin` and `callbacks` are the seams between threads and to users.
"""

__all__ = [
    "admin",
    "callbacks",
    "compose",
    "config",
    "etcd",
    "main",
    "metrics",
    "peers",
    "pg",
    "rest",
    "runner",
    "watchdog",
]
