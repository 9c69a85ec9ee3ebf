"""The agent's REST API, Patroni's endpoints: `api` (the face and its threads), `server`
(connections on one event loop), `wire` (HTTP framing as pure functions), `read` (health and
cluster documents), `write` and `switchover` (operator requests) and `common` (what they share).
"""

__all__ = ["api", "common", "read", "server", "switchover", "wire", "write"]
