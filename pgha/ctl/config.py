# `pgha ctl edit-config`, `pause` and `resume` change the dynamic configuration `/config`. The
# changes are pure values (an `EditPlan`: an optional replacement, then merge patches in order),
# so a lost compare-and-set simply redoes the same plan on the configuration read again.
# Safety rules: a new configuration is checked as a whole with the agent's own parser
# (`parse_dcs_config`, PostgreSQL parameters against the installed server's catalogue of
# settings) before anything is written, and it is written only by compare-and-set on the version
# it was computed from, so a concurrent change (by another operator or the REST API) is merged,
# never silently overwritten.
"""Edit plans for `/config` (--set, --pg, --apply, --replace, editor), diffs and the CAS write."""

from __future__ import annotations

import copy
import difflib
import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from pgha.agent.admin import ClusterAdmin
from pgha.agent.config.dcs import parse_dcs_config
from pgha.agent.config.model import AgentConfigError, DcsConfig
from pgha.ctl.common import CtlError, usage_error
from pgha.ctl.render import yaml_text
from pgha.engine.config import merge_patch

CAS_ATTEMPTS = 5
SOURCE = "the new /config"


@dataclass(frozen=True, slots=True, kw_only=True)
class EditPlan:
    """What to do to `/config`: start from `replacement` (None: the stored value), then merge
    every patch in order (RFC 7386: objects merge, null deletes, anything else replaces)."""

    replacement: Mapping[str, Any] | None = None
    patches: tuple[Mapping[str, Any], ...] = ()

    @property
    def empty(self) -> bool:
        return self.replacement is None and not self.patches


class EditResult(enum.Enum):
    """How a configuration change ended."""

    WRITTEN = "written"
    UNCHANGED = "unchanged"


# ---------------------------------------------------------------- building a plan


def _json_ready(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def parse_value(text: str) -> Any:
    """A command-line value read as YAML (`30` -> 30, `on` -> True, `null` -> None, `[a]` ->
    a list); text YAML cannot read, or reads as something JSON cannot hold (a date), stays text.
    An empty value is the empty string."""
    if text == "":
        return ""
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: an int of 4300+ digits
        return text
    return value if _json_ready(value) else text


def split_assignment(text: str, option: str) -> tuple[str, str]:
    """`name=value` -> (name, value).

    Raises:
        CtlError: exit 2 when there is no `=` or no name.
    """
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise usage_error(f"{option}: expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def set_patch(text: str) -> dict[str, Any]:
    """`--set a.b.c=value` as a merge patch `{"a": {"b": {"c": value}}}` (null deletes)."""
    key, raw_value = split_assignment(text, "--set")
    parts = key.split(".")
    if not all(parts):
        raise usage_error(f"--set: {key!r} is not a dotted key (a.b.c)")
    patch: Any = parse_value(raw_value)
    for part in reversed(parts):
        patch = {part: patch}
    return dict(patch)


def pg_patch(text: str) -> dict[str, Any]:
    """`--pg name=value` as a patch of `postgresql.parameters` (the name is never split)."""
    name, raw_value = split_assignment(text, "--pg")
    return {"postgresql": {"parameters": {name: parse_value(raw_value)}}}


def load_document(text: str, source: str) -> dict[str, Any]:
    """A YAML (or JSON) mapping given by the operator; an empty document is `{}`.

    Raises:
        CtlError: exit 2 for a syntax error, a document that is not a mapping, or values JSON
            cannot hold.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise usage_error(f"{source}: not valid YAML{where}") from None
    except (ValueError, RecursionError) as exc:  # an int of 4300+ digits, nesting too deep
        raise usage_error(f"{source}: not a usable document ({type(exc).__name__})") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise usage_error(f"{source}: expected a mapping of configuration keys")
    if not _json_ready(document):
        raise usage_error(f"{source}: holds values that JSON cannot (dates, binary, NaN ...)")
    return document


def apply_plan(raw: Mapping[str, Any], plan: EditPlan) -> dict[str, Any]:
    """The configuration after `plan` (`raw` is not changed)."""
    result: Any = copy.deepcopy(dict(raw if plan.replacement is None else plan.replacement))
    for patch in plan.patches:
        result = merge_patch(result, copy.deepcopy(dict(patch)))
    assert isinstance(result, dict)  # merging an object patch into an object gives an object
    return result


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """A unified diff of the two configurations as YAML ("" when they are equal)."""
    before = yaml_text(dict(old)).splitlines(keepends=True) if old else []
    after = yaml_text(dict(new)).splitlines(keepends=True) if new else []
    lines = difflib.unified_diff(before, after, fromfile="/config (stored)", tofile="/config (new)")
    return "".join(lines)


def check_config(raw: Mapping[str, Any], stored: Mapping[str, Any] | None = None) -> DcsConfig:
    """Check a whole configuration with the agent's parser.

    An empty configuration is refused like the REST API's `PUT /config {}`: it would silently
    reset every setting to its default. PostgreSQL parameters are checked against the settings
    catalogue of the PostgreSQL installed here (the agent configuration's `bin_dir`), as the REST
    API does, except those whose value `stored` (the configuration being changed) already holds;
    without a catalogue (no server installed here) the result carries a warning saying so.

    Raises:
        CtlError: exit 2 with the parser's message (key, what was expected, what was found).
    """
    if not raw:
        raise usage_error(
            "invalid configuration: an empty /config would reset every setting to its default; "
            "keep at least one key (e.g. ttl), or change keys with --set"
        )
    try:
        return parse_dcs_config(raw, SOURCE, stored)
    except AgentConfigError as exc:
        raise usage_error(f"invalid configuration: {exc}") from None


# ---------------------------------------------------------------- writing


Confirm = Callable[[Mapping[str, Any], Mapping[str, Any], DcsConfig], None]


def store_config(
    admin: ClusterAdmin,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    confirm: Confirm,
    attempts: int = CAS_ATTEMPTS,
) -> tuple[EditResult, dict[str, Any]]:
    """Read `/config`, apply `change`, check, confirm and compare-and-set; redo on a lost CAS.

    `confirm(old, new, checked)` is called before every write attempt (it shows the diff and
    raises CtlError to stop). Returns the outcome and the configuration now stored.

    Raises:
        CtlError: from `change`, the check or `confirm`; exit 1 when `/config` does not exist
            (the cluster is not bootstrapped) or after `attempts` lost CAS.
        DcsError: etcd did not answer.
    """
    for _ in range(attempts):
        raw, version = admin.raw_config()
        if version is None:
            # Creating it would stop the bootstrapping node from writing its bootstrap.dcs.
            raise CtlError("the cluster has no /config yet (not bootstrapped): nothing to change")
        new = change(copy.deepcopy(raw))
        if new == raw:
            return EditResult.UNCHANGED, raw
        checked = check_config(new, raw)
        confirm(raw, new, checked)
        if admin.replace_config(new, version):
            return EditResult.WRITTEN, new
    raise CtlError(f"/config changed concurrently {attempts} times; nothing was written")
