"""The notebooks run top to bottom on a fresh kernel, draw figures and are stored without outputs.

The three studies run for real (marked slow: about a minute each; CI runs them). The runner that
`pgha notebooks check|render` uses is tested on small notebooks written here, which start a real
kernel too.
"""

from __future__ import annotations

import io
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from pgha.notebooks import (
    NotebookError,
    find_notebooks,
    main,
    read_notebook,
    run_notebook,
    stored_outputs,
)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
STUDIES = ("clock_skew_study", "failover_timeline", "timing_study")
NOTEBOOKS = find_notebooks(NOTEBOOK_DIR)
CELL_TIMEOUT_S = 240

FIGURE = "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()"


def write(path: Path, *sources: str, outputs: bool = False) -> Path:
    cells = [new_markdown_cell("# a test notebook")] + [new_code_cell(s) for s in sources]
    if outputs:
        cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
        cells[1].execution_count = 1
    notebook = new_notebook(
        cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )
    nbformat.write(notebook, path)
    return path


def test_the_three_studies_are_there() -> None:
    assert {path.stem for path in NOTEBOOKS} >= set(STUDIES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs_with_a_python3_kernel(path: Path) -> None:
    notebook = read_notebook(path)
    assert stored_outputs(notebook) == ()
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_clean_on_a_fresh_kernel(path: Path) -> None:
    run = run_notebook(path, timeout_s=CELL_TIMEOUT_S)
    assert run.errors == ()
    assert run.images >= 1
    assert run.ok, run.problems()


# ---------------------------------------------------------------- the runner itself


def test_a_clean_notebook_with_a_figure_is_ok_and_renders(tmp_path: Path) -> None:
    path = write(tmp_path / "good.ipynb", "import os\nprint(os.getcwd())", FIGURE)
    run = run_notebook(path, html_dir=tmp_path / "out")
    assert (run.errors, run.images, run.stored_outputs, run.ok) == ((), 1, (), True)
    assert run.html == tmp_path / "out" / "good.html"
    page = run.html.read_text(encoding="utf-8")
    assert "data:image/png;base64" in page
    assert str(tmp_path) in page  # the kernel ran in the notebook's directory
    assert read_notebook(path).cells[1].outputs == []  # the stored file is left alone


def test_a_cell_that_raises_is_an_error_and_stops_the_run(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.ipynb", "raise ValueError('boom')", FIGURE)
    run = run_notebook(path)
    assert run.errors == ("cell 1: ValueError: boom",)
    assert run.images == 0
    assert not run.ok
    assert any("no figure" in problem for problem in run.problems())


def test_a_cell_that_outlives_its_timeout_is_an_error(tmp_path: Path) -> None:
    # a cell that sleeps past its 2 s limit: the sleep is the point
    path = write(tmp_path / "slow.ipynb", "import time\ntime.sleep(30)")
    run = run_notebook(path, timeout_s=2)
    assert "a cell ran longer than 2 s" in run.errors
    assert not run.ok


def test_stored_outputs_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "dirty.ipynb", "print(1)", outputs=True)
    assert stored_outputs(read_notebook(path)) == (1,)


def test_find_notebooks_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="no such directory"):
        find_notebooks(tmp_path / "missing")
    with pytest.raises(NotebookError, match="no notebooks"):
        find_notebooks(tmp_path)
    write(tmp_path / "one.ipynb", FIGURE)
    with pytest.raises(NotebookError, match=r"--only two: no such notebook .* expected one of one"):
        find_notebooks(tmp_path, ["two"])
    assert find_notebooks(tmp_path, ["one.ipynb"]) == [tmp_path / "one.ipynb"]


def test_a_file_that_is_not_a_notebook_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "broken.ipynb").write_text("{not json", encoding="utf-8")
    with pytest.raises(NotebookError, match=r"broken\.ipynb: not a readable notebook"):
        read_notebook(tmp_path / "broken.ipynb")


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--dir", str(tmp_path / "missing")]) == 2
    assert "missing: no such directory" in capsys.readouterr().err
    write(tmp_path / "good.ipynb", FIGURE)
    assert main(["check", "--dir", str(tmp_path), "--timeout", "0"]) == 2
    out = io.StringIO()
    pages = tmp_path / "pages"
    assert main(["render", "--dir", str(tmp_path), "--out", str(pages)], stdout=out) == 0
    assert (pages / "good.html").exists()
    assert out.getvalue().startswith("ok   good: ")
    write(tmp_path / "bad.ipynb", "1 / 0")
    out = io.StringIO()
    assert main(["check", "--dir", str(tmp_path), "--only", "bad"], stdout=out) == 1
    assert "FAIL bad" in out.getvalue()
    assert "ZeroDivisionError" in out.getvalue()
