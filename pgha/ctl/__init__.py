"""`pgha ctl`: the operator's client, like patronictl. It reads an agent configuration for the
etcd endpoints and the scope, reads the cluster from etcd and asks members' REST APIs to act.

`main` parses the command line, `cluster` and `config` read the cluster and change `/config`,
`actions` asks members to act, `render` shows what was read, `rest` and `common` are shared.
"""

__all__ = ["actions", "cluster", "common", "config", "main", "render", "rest"]
