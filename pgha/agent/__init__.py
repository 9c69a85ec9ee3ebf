"""The real agent: etcd, PostgreSQL, watchdog, REST API, callbacks and the loop driver."""
