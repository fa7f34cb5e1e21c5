"""The ``overseg`` command.

User errors (bad files, bad volumes, bad options) end with exit code 2 and a one-line
message on stderr, never a traceback; outputs are written atomically, so a failed run
leaves no partial file.

Start-up is kept short: the parser and every check that needs no data
(:mod:`~sklearn_overseg.cli._parser`) use the standard library only, so ``--help``, ``--version``
and refusals such as an existing output answer at once; the commands
(:mod:`~sklearn_overseg.cli._commands`) are imported after those checks, and each imports only what
it uses. ``benchmarks/startup.py`` measures it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from ._parser import EXIT_CODES, UserError, build_parser, check_arguments

__all__ = ["EXIT_CODES", "build_parser", "main"]

# POT imports every optional backend it finds (torch, jax, tensorflow, cupy) when it is
# imported: several seconds for torch alone. The command gives POT numpy arrays only,
# so it turns them off, and asks for POT without its optional extras (see
# ``sklearn_overseg.features.ot.import_pot``); worker processes inherit the environment.
_LEAN_POT_ENVIRONMENT = (
    "POT_BACKEND_DISABLE_PYTORCH",
    "POT_BACKEND_DISABLE_JAX",
    "POT_BACKEND_DISABLE_TENSORFLOW",
    "POT_BACKEND_DISABLE_CUPY",
    "SKLEARN_OVERSEG_LEAN_POT",
)


@contextlib.contextmanager
def _lean_pot() -> Iterator[None]:
    """Set the variables above for one command (unless set already); restore them after."""
    added = [name for name in _LEAN_POT_ENVIRONMENT if name not in os.environ]
    os.environ.update(dict.fromkeys(added, "1"))
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def main(argv: list[str] | None = None) -> int:
    """Run the ``overseg`` command; returns the exit code.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``overseg``; ``sys.argv[1:]`` by default.

    Returns
    -------
    code : int
        See :data:`EXIT_CODES`.
    """
    args = build_parser().parse_args(argv)
    try:
        check_arguments(args)
        from ._commands import COMMANDS

        with _lean_pot():
            return COMMANDS[args.command](args)
    except (UserError, ValueError, TypeError, KeyError, OSError) as exc:
        if os.environ.get("OVERSEG_DEBUG"):
            raise  # the full traceback, to tell a bug from a user error
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        # One line, whatever the library put in its message.
        print(f"overseg: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("overseg: interrupted", file=sys.stderr)
        return 130
