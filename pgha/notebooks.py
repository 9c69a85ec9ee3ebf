"""Run the notebooks of ``notebooks/`` on a fresh kernel, check them, render them to HTML.

``pgha notebooks check`` executes every notebook (or those named with ``--only``) top to bottom on
a fresh ``python3`` kernel whose working directory is the notebook's own, and fails when a cell
raised or timed out, when a notebook drew no figure (no ``image/png`` output), or when the stored
file carries outputs (notebooks are stored clean: the rendered pages hold the outputs).
``pgha notebooks render`` does the same and also writes each executed notebook as
``<out>/<name>.html`` (default ``reports/``) with nbconvert's HTML exporter, figures embedded.
Exit codes: 0 every notebook ran clean, 1 one did not, 2 bad input. The test suite
(``tests/notebooks``) runs the same functions.

Needs the ``notebooks`` extra (nbclient, nbconvert, nbformat, ipykernel); they are imported only
when a notebook runs.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from nbformat import NotebookNode

CELL_TIMEOUT_S = 300  # per cell: a study cell runs a sweep; the whole notebook aims at ~1 minute
KERNEL_NAME = "python3"
IMAGE_TYPE = "image/png"
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
RAISED = "a cell raised: "  # an execution failure that the cell's error output also shows
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in tracebacks


class NotebookError(ValueError):
    """Bad input: a missing directory, an unknown notebook name, an unreadable notebook."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotebookRun:
    """What one execution of a notebook showed."""

    name: str
    path: Path
    wall_s: float
    errors: tuple[str, ...]  # error outputs and execution failures, one line each
    images: int  # image/png outputs: the figures drawn
    stored_outputs: tuple[int, ...]  # indices of cells the stored file keeps outputs for
    html: Path | None = None  # the rendered page, if one was written

    @property
    def ok(self) -> bool:
        """Ran without error, drew at least one figure, and is stored without outputs."""
        return not self.problems()

    def problems(self) -> list[str]:
        """Why this run is not clean, one sentence each (empty when it is)."""
        found = [f"error: {error}" for error in self.errors]
        if self.images == 0:
            found.append("no figure: no image/png output in any cell")
        if self.stored_outputs:
            cells = ", ".join(str(index) for index in self.stored_outputs)
            found.append(
                f"stored with outputs (cells {cells}): clear them with "
                f"`jupyter nbconvert --clear-output --inplace {self.path}`"
            )
        return found


def find_notebooks(directory: Path, only: Sequence[str] = ()) -> list[Path]:
    """The ``*.ipynb`` files of `directory`, sorted; only those named in `only` (stems) if given.

    Raises:
        NotebookError: `directory` does not exist, holds no notebook, or `only` names one that
            it does not hold.
    """
    if not directory.is_dir():
        raise NotebookError(
            f"{directory}: no such directory (run from the repository root or pass --dir)"
        )
    found = {path.stem: path for path in sorted(directory.glob("*.ipynb"))}
    if not found:
        raise NotebookError(f"{directory}: no notebooks (*.ipynb) in it")
    unknown = [name for name in only if _stem(name) not in found]
    if unknown:
        raise NotebookError(
            f"--only {', '.join(unknown)}: no such notebook in {directory}; "
            f"expected one of {', '.join(found)}"
        )
    return [found[_stem(name)] for name in only] if only else list(found.values())


def _stem(name: str) -> str:
    return Path(name).stem if name.endswith(".ipynb") else name


def read_notebook(path: Path) -> NotebookNode:
    """The notebook stored at `path` (nbformat 4).

    Raises:
        NotebookError: the file cannot be read or is not a notebook.
    """
    import nbformat

    try:
        # nbformat.read carries no annotations (nbformat 5.x)
        notebook: NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as error:  # nbformat's read errors are ValueErrors
        raise NotebookError(f"{path}: not a readable notebook: {error}") from None
    return notebook


def stored_outputs(notebook: NotebookNode) -> tuple[int, ...]:
    """Indices of the code cells that carry outputs or an execution count."""
    return tuple(
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    )


def execute(notebook: NotebookNode, cwd: Path, *, timeout_s: int = CELL_TIMEOUT_S) -> list[str]:
    """Execute `notebook` in place on a fresh kernel working in `cwd`, top to bottom.

    Execution stops at the first cell that raises or times out. Returns that failure (one line:
    ``a cell raised: ...``, a timeout or a dead kernel), or nothing; the error outputs left in
    the cells are read with `error_outputs`.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    kernel = notebook.metadata.get("kernelspec", {}).get("name", KERNEL_NAME)
    client = NotebookClient(
        notebook,
        timeout=timeout_s,
        kernel_name=kernel,
        resources={"metadata": {"path": str(cwd)}},
    )
    # The kernel's own stderr (ipykernel's notice that it talks TCP on loopback, and anything a
    # dying kernel prints) goes to a file, shown only when the kernel dies.
    with tempfile.TemporaryFile(mode="w+") as kernel_stderr:
        try:
            client.execute(stderr=kernel_stderr)
        except CellExecutionError as error:
            last = _ANSI.sub("", str(error)).strip().splitlines()[-1:]
            return [RAISED + (last[0] if last else "")]
        except CellTimeoutError:
            return [f"a cell ran longer than {timeout_s} s"]
        except DeadKernelError as error:
            kernel_stderr.seek(0)
            tail = " | ".join(kernel_stderr.read().strip().splitlines()[-3:])
            return [f"the kernel died: {error}" + (f" (its stderr: {tail})" if tail else "")]
    return []


def error_outputs(notebook: NotebookNode) -> list[str]:
    """One line per error output: ``cell N: Name: message``."""
    return [
        f"cell {index}: {output.get('ename', 'Error')}: {output.get('evalue', '')}"
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


def count_images(notebook: NotebookNode) -> int:
    """The number of image/png outputs (figures) in `notebook`."""
    return sum(
        1
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if IMAGE_TYPE in output.get("data", {})
    )


def to_html(notebook: NotebookNode) -> str:
    """`notebook` as one self-contained HTML page (figures embedded), via nbconvert."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()  # type: ignore[no-untyped-call]  # traitlets constructor
    body, _ = exporter.from_notebook_node(notebook)
    return str(body)


def run_notebook(
    path: Path, *, timeout_s: int = CELL_TIMEOUT_S, html_dir: Path | None = None
) -> NotebookRun:
    """Execute the notebook at `path` (on a fresh kernel, in its directory) and check it; with
    `html_dir`, also write the executed notebook there as ``<name>.html``.

    Raises:
        NotebookError: the file is not a readable notebook, or the page cannot be written.
    """
    notebook = read_notebook(path)
    stored = stored_outputs(notebook)
    started = time.perf_counter()
    failures = execute(notebook, path.resolve().parent, timeout_s=timeout_s)
    wall_s = time.perf_counter() - started
    errors = error_outputs(notebook)
    errors += [f for f in failures if not (errors and f.startswith(RAISED))]
    html = None
    if html_dir is not None:
        html = html_dir / f"{path.stem}.html"
        try:
            html_dir.mkdir(parents=True, exist_ok=True)
            html.write_text(to_html(notebook), encoding="utf-8")
        except OSError as error:
            raise NotebookError(f"{html}: cannot write the page: {error.strerror}") from None
    return NotebookRun(
        name=path.stem,
        path=path,
        wall_s=wall_s,
        errors=tuple(errors),
        images=count_images(notebook),
        stored_outputs=stored,
        html=html,
    )


# ---------------------------------------------------------------- pgha notebooks


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``pgha notebooks``."""
    parser = argparse.ArgumentParser(
        prog="pgha notebooks",
        description="Execute the notebooks on a fresh kernel and check them (no error cell, at "
        "least one figure, stored without outputs); `render` also writes each as HTML. Exit "
        "code 0: all clean; 1: one failed; 2: bad input.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = commands.add_parser("check", help="run the notebooks and check them; write nothing")
    render = commands.add_parser("render", help="run, check and write <out>/<name>.html")
    for command in (check, render):
        command.add_argument(
            "--only", action="append", default=[], metavar="NAME", help="this notebook only"
        )
        command.add_argument(
            "--dir", type=Path, default=Path("notebooks"), help="default: notebooks"
        )
        command.add_argument(
            "--timeout", type=int, default=CELL_TIMEOUT_S, help="seconds per cell (default 300)"
        )
    render.add_argument("--out", type=Path, default=Path("reports"), help="default: reports")
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run ``pgha notebooks`` with `argv`; return the exit code."""
    stdout = stdout or sys.stdout
    args = build_parser().parse_args(argv)
    html_dir: Path | None = getattr(args, "out", None)
    try:
        if args.timeout < 1:
            raise NotebookError(f"--timeout {args.timeout}: expected whole seconds >= 1")
        paths = find_notebooks(args.dir, args.only)
        runs = _run_all(paths, args.timeout, html_dir, lambda line: print(line, file=stdout))
    except NotebookError as error:
        print(f"pgha: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK if all(run.ok for run in runs) else EXIT_FAILED


def _run_all(
    paths: Sequence[Path], timeout_s: int, html_dir: Path | None, say: Callable[[str], None]
) -> list[NotebookRun]:
    runs = []
    for path in paths:
        run = run_notebook(path, timeout_s=timeout_s, html_dir=html_dir)
        page = f" -> {run.html}" if run.html is not None else ""
        verdict = "ok  " if run.ok else "FAIL"
        say(f"{verdict} {run.name}: {run.wall_s:.1f} s, {run.images} figure(s){page}")
        for problem in run.problems():
            say(f"       {problem}")
        runs.append(run)
    return runs


if __name__ == "__main__":  # pragma: no cover - `python -m pgha.notebooks`
    sys.exit(main())
