"""Running the ``overseg`` command in-process, shared by the CLI test modules."""

from __future__ import annotations

from sklearn_overseg.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    """Run ``overseg argv``; argparse errors (SystemExit) count as their exit code."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    """``err`` is one line ``overseg: error: ...`` holding every fragment, no traceback."""
    assert err.startswith("overseg: error: "), err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
