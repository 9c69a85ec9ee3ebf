"""The agent's configuration file: YAML close to Patroni's, read once at start into frozen values;
every mistake is an error naming the file, the line and the field.

`file` reads and checks the whole file, `model` holds the values, `sections`, `postgresql` and
`dcs` parse their sections, `values` gives typed accessors over the located YAML tree, and `env`
checks a parsed configuration against this machine.
"""

__all__ = ["dcs", "env", "file", "model", "postgresql", "sections", "values"]
