"""pgha: a Patroni-style high-availability manager for PostgreSQL.

The decision core (:mod:`pgha.engine`) is pure logic: values in, decisions out. The same engine runs
next to a real PostgreSQL and etcd (``pgha agent``), in the SimPy world (:mod:`sim`) and in the
Docker chaos world (:mod:`chaos`). Code shared by both worlds (histories, checkers, scenarios,
reports) also lives in this package; ``pgha`` never imports ``sim`` or ``chaos`` except lazily from
the CLI.

Importing pgha first decides whether this process runs the optional compiled build of the hot
modules (``pgha compile``; :mod:`pgha.compiled`): only while every source matches it.
"""

from pgha.compiled import install as _install_compiled

__version__ = "0.1.0"

__all__ = ["__version__"]

_install_compiled()
