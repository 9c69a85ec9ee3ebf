"""The PostgreSQL port: `port` carries out the engine's long actions with the modules beside it:
`ctl` (pg_ctl), `sql` (connections), `state` (what is observed each cycle), `conf` (the
configuration files the agent owns), `params` and `catalogue` (parameter checks from the server's
own pg_settings), `clone`, `rewind`, `slots`, `backrest`, `exec` (running programs) and `settings`.
"""

__all__ = [
    "backrest",
    "catalogue",
    "clone",
    "conf",
    "ctl",
    "exec",
    "params",
    "port",
    "rewind",
    "settings",
    "slots",
    "sql",
    "state",
]
