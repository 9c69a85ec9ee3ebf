# The `pgha ctl` commands that read the cluster or change `/config`: list, topology, history,
# show-config, edit-config, pause and resume. Each is a thin shell: one read through the
# ClusterAdmin, then the pure rendering of ctl_render or the pure edit plan of ctl_config.
# Safety rules: `/config` is changed only by ctl_config.store_config (checked with the agent's
# parser, compare-and-set, shown as a diff and confirmed unless --force); pause is reported done
# with --wait only when every member's own REST API says it is paused.
"""list, topology, history, show-config, edit-config, pause and resume."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pgha.agent.admin import ClusterAdmin
from pgha.agent.config.model import DcsConfig
from pgha.ctl.common import Console, CtlError, usage_error
from pgha.ctl.config import (
    EditPlan,
    EditResult,
    apply_plan,
    config_diff,
    load_document,
    pg_patch,
    set_patch,
    store_config,
)
from pgha.ctl.render import (
    dcs_warning_lines,
    history_table,
    members_table,
    render,
    render_document,
    yaml_text,
)
from pgha.ctl.rest import RestClient
from pgha.engine.config import diff_patch, merge_patch

POLL_S = 0.5


class CtlAdmin(ClusterAdmin, Protocol):
    """The ClusterAdmin plus the raw `/history` lines (with reasons and timestamps)."""

    def history_lines(self) -> list[Any]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Ctl:
    """Everything a command uses: the cluster, the members' REST APIs and the console."""

    scope: str
    admin: CtlAdmin
    rest: RestClient
    console: Console
    fmt: str = "pretty"
    sleep: Callable[[float], None] = time.sleep
    timer_mono: Callable[[], float] = time.monotonic
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


# ---------------------------------------------------------------- reading


def cmd_list(ctl: Ctl, args: argparse.Namespace) -> int:
    """`list` and `topology`: the members table."""
    view = ctl.admin.cluster()
    documents = ctl.admin.member_documents()
    table = members_table(
        ctl.scope,
        view,
        documents,
        topology=args.command == "topology",
        extended=bool(getattr(args, "extended", False)),
    )
    ctl.console.echo(render(table, ctl.fmt))
    for line in (*dcs_warning_lines(view), *config_error_lines(documents)):
        ctl.console.warn(line)
    return 0


def config_error_lines(documents: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A `warning:` line per member that refused the stored `/config` (its member key says why;
    it runs on its last good configuration)."""
    return [
        f"warning: {name} refuses the stored /config and keeps its last good one: {error}"
        for name, document in sorted(documents.items())
        if isinstance(error := document.get("config_error"), str) and error
    ]


def cmd_history(ctl: Ctl, args: argparse.Namespace) -> int:
    """`history`: the timeline switches recorded in `/history`."""
    del args
    ctl.console.echo(render(history_table(ctl.admin.history_lines()), ctl.fmt))
    return 0


def cmd_show_config(ctl: Ctl, args: argparse.Namespace) -> int:
    """`show-config`: `/config` as YAML (JSON with --format json)."""
    del args
    raw, version = ctl.admin.raw_config()
    if version is None:
        raise CtlError(f"cluster {ctl.scope} has no /config yet (it was never bootstrapped)")
    ctl.console.echo(render_document(raw, ctl.fmt))
    return 0


# ---------------------------------------------------------------- edit-config


def _read_source(name: str, console: Console, what: str) -> dict[str, Any]:
    if name == "-":
        return load_document(console.stdin.read(), f"{what} (stdin)")
    try:
        text = Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise usage_error(f"{what} {name}: cannot read it: {reason}") from None
    return load_document(text, f"{what} {name}")


def plan_of(args: argparse.Namespace, console: Console) -> EditPlan:
    """The plan given on the command line: --replace, then --apply, --set and --pg in order."""
    if args.replace == "-" and args.apply == "-":
        raise usage_error("--apply and --replace cannot both read stdin")
    replacement = None if args.replace is None else _read_source(args.replace, console, "--replace")
    patches: list[dict[str, Any]] = []
    if args.apply is not None:
        patches.append(_read_source(args.apply, console, "--apply"))
    patches.extend(set_patch(text) for text in args.set or ())
    patches.extend(pg_patch(text) for text in args.pg or ())
    return EditPlan(replacement=replacement, patches=tuple(patches))


def edit_in_editor(ctl: Ctl, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Open $EDITOR (or $VISUAL, else vi) on `raw` as YAML; the edited document."""
    editor = ctl.environ.get("EDITOR") or ctl.environ.get("VISUAL") or "vi"
    command = shlex.split(editor)
    if not command:
        raise usage_error("$EDITOR is empty")
    handle, name = tempfile.mkstemp(prefix="pgha-config-", suffix=".yaml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(yaml_text(dict(raw)) if raw else "")
        try:
            done = subprocess.run([*command, name], check=False)
        except OSError as exc:
            raise usage_error(f"cannot run the editor {command[0]}: {exc.strerror}") from None
        if done.returncode != 0:
            raise CtlError(f"the editor exited with status {done.returncode}; nothing changed")
        text = Path(name).read_text(encoding="utf-8")
    finally:
        Path(name).unlink(missing_ok=True)
    return load_document(text, "the edited configuration")


def _confirm_change(ctl: Ctl, force: bool) -> Callable[[Any, Any, DcsConfig], None]:
    def confirm(old: Mapping[str, Any], new: Mapping[str, Any], checked: DcsConfig) -> None:
        ctl.console.echo(config_diff(old, new).rstrip("\n"))
        for warning in checked.warnings:
            ctl.console.warn(f"warning: {warning}")
        ctl.console.confirm("Apply these changes?", force=force)

    return confirm


def cmd_edit_config(ctl: Ctl, args: argparse.Namespace) -> int:
    """`edit-config`: change `/config` by options, a file or $EDITOR; diff, confirm, CAS."""
    plan = plan_of(args, ctl.console)
    if plan.empty:
        if not ctl.console.interactive:
            raise usage_error(
                "nothing to change: give --set, --pg, --apply or --replace "
                "(or run at a terminal to edit with $EDITOR)"
            )
        raw, _ = ctl.admin.raw_config()
        patch = diff_patch(raw, edit_in_editor(ctl, raw))
        if not patch:
            ctl.console.echo("Not changed")
            return 0
        plan = EditPlan(patches=(patch,))
    outcome, _ = store_config(
        ctl.admin, lambda raw: apply_plan(raw, plan), _confirm_change(ctl, args.force)
    )
    ctl.console.echo("Configuration changed" if outcome is EditResult.WRITTEN else "Not changed")
    return 0


# ---------------------------------------------------------------- pause and resume


def cmd_pause(ctl: Ctl, args: argparse.Namespace) -> int:
    """`pause` / `resume`: set or remove `pause` in `/config`; --wait for every member."""
    paused = args.command == "pause"

    def change(raw: dict[str, Any]) -> dict[str, Any]:
        if bool(raw.get("pause")) == paused:
            raise CtlError(f"cluster {ctl.scope} is {'already' if paused else 'not'} paused")
        merged = merge_patch(raw, {"pause": True if paused else None})
        assert isinstance(merged, dict)
        return merged

    store_config(ctl.admin, change, lambda old, new, checked: None)
    word = "paused" if paused else "resumed"
    ctl.console.echo(f"Success: cluster management is {word}")
    if args.wait:
        wait_for_pause(ctl, paused, args.wait_timeout)
    return 0


def wait_for_pause(ctl: Ctl, paused: bool, timeout_s: float) -> None:
    """Poll every member's GET /patroni until it reports `pause` as `paused`.

    Raises:
        CtlError: exit 1 naming the members that did not report it within `timeout_s`.
    """
    view = ctl.admin.cluster()
    waiting = {m.name: m.api_url for m in view.members}
    ctl.console.echo(f"Waiting for {', '.join(sorted(waiting))} to report it")
    deadline_mono = ctl.timer_mono() + timeout_s
    while waiting:
        for name, api_url in sorted(waiting.items()):
            try:
                answer = ctl.rest.call(name, api_url, "GET", "/patroni")
            except CtlError:
                continue
            document = answer.document if isinstance(answer.document, dict) else {}
            if answer.ok and bool(document.get("pause")) == paused:
                del waiting[name]
        if waiting and ctl.timer_mono() >= deadline_mono:
            names = ", ".join(sorted(waiting))
            raise CtlError(f"not reported within {timeout_s:g} s by: {names}")
        if waiting:
            ctl.sleep(POLL_S)
    ctl.console.echo("Every member reports it")
