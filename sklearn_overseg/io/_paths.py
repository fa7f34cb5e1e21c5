"""Where outputs may go: atomic writes, leftover temporaries, and paths that must differ.

Every file or directory the package writes goes through :func:`atomic_output`: it is
written under a hidden temporary name beside the output,
``.<name>.ovs-<12 hex>.tmp``, and renamed into place only once complete. The writing
process holds an advisory lock (``flock``) on its temporary for as long as it exists, so
a temporary whose lock is free belongs to a process that died (SIGKILL, power loss, a
full disk that killed the writer): :func:`remove_stale_temporaries`, run at the start of
every write to that output, removes it. Replacing an existing directory sets the old one
aside as ``.<name>.ovs-<hex>.old`` (locked the same way); a stale one is put back when
the output is missing (the writer died between the two renames) and removed otherwise.
Temporaries of other naming, also those of older versions of this package
(``.<name>.<8 hex>.tmp``), are never touched.

:func:`check_output_paths` is what a command runs before any work: inputs and outputs
compared by resolved path and :func:`os.path.samefile`, an output that is an input or a
container holding one (an HDF5 file, a Zarr group, any directory above it) refused
whatever ``overwrite`` says, and each output's folder checked writable.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

try:  # POSIX; elsewhere writes are still atomic, but stale temporaries are left alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "OutputPathError",
    "atomic_output",
    "check_distinct_paths",
    "check_output_paths",
    "check_writable",
    "remove_stale_temporaries",
]

PathLike = str | os.PathLike[str]

_TAG = "ovs"
_TOKEN_HEX = 12
# A temporary is created, then locked a few instructions later: one younger than this
# may be a live writer's that is not locked yet.
_GRACE_SECONDS = 1.0


class OutputPathError(ValueError):
    """An output path that would destroy an input or cannot be written."""


def _temp_path(path: Path, token: str, kind: str) -> Path:
    return path.with_name(f".{path.name}.{_TAG}-{token}.{kind}")


def _temp_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(
        rf"^\.{re.escape(path.name)}\.{_TAG}-(?P<token>[0-9a-f]{{{_TOKEN_HEX}}})\.(?P<kind>tmp|old)$"
    )


# ----------------------------------------------------------------------------- locks
def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path`` (file or directory), or None if busy."""
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Serialise renames beside one output (concurrent writers of the same name)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # also releases the lock


# ----------------------------------------------------------------------- temporaries
def remove_stale_temporaries(path: PathLike) -> list[Path]:
    """Remove the temporaries that dead writers left beside ``path``.

    Only names of this package's pattern for exactly this output are considered, and
    only those no live process holds the lock of. A set-aside old directory is put back
    in place when ``path`` itself is missing.

    Parameters
    ----------
    path : str or os.PathLike
        An output path.

    Returns
    -------
    removed : list of pathlib.Path
        The temporaries removed (or restored to ``path``).
    """
    path = Path(os.fspath(path))
    parent = path.parent
    if fcntl is None or not parent.is_dir():  # pragma: no cover - no locks to tell
        return []
    pattern = _temp_pattern(path)
    try:
        names = [name for name in os.listdir(parent) if pattern.match(name)]
    except OSError:
        return []
    removed = []
    for name in sorted(names):
        entry = parent / name
        fd = _try_lock(entry)
        if fd is None:  # a live writer's, or already gone
            continue
        try:
            if time.time() - entry.lstat().st_mtime < _GRACE_SECONDS:
                continue
            kind = pattern.match(name)["kind"]  # type: ignore[index]
            with _directory_lock(parent):
                if kind == "old" and not (path.exists() or path.is_symlink()):
                    os.replace(entry, path)  # its writer died between the two renames
                else:
                    _remove(entry)
            removed.append(entry)
        except OSError:
            continue  # not ours to remove after all (permissions, raced away)
        finally:
            _close(fd)
    return removed


def _make_temp(path: Path, *, directory: bool) -> tuple[Path, int | None]:
    """Create and lock a temporary sibling of ``path``: (its path, the lock's fd)."""
    while True:
        tmp = _temp_path(path, secrets.token_hex(_TOKEN_HEX // 2), "tmp")
        try:
            if directory:
                tmp.mkdir()
            else:
                # Not tempfile: its 0o600 mode would outlive the rename.
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise _naming(exc, path, "cannot write") from None
        return tmp, _try_lock(tmp)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _naming(exc: OSError, path: Path, what: str) -> OSError:
    """The same kind of OSError, naming the output instead of a hidden temporary."""
    code = exc.errno if exc.errno is not None else errno.EIO
    reason = exc.strerror or str(exc)
    return OSError(code, f"{what} '{path}': {reason}")


def _mentions(exc: BaseException, tmp: Path) -> bool:
    names = [getattr(exc, "filename", None), getattr(exc, "filename2", None)]
    text = str(tmp)
    return any(isinstance(n, str | os.PathLike) and os.fspath(n).startswith(text) for n in names)


# --------------------------------------------------------------------- atomic output
def _is_zarr_store(path: Path) -> bool:
    return any((path / marker).exists() for marker in ("zarr.json", ".zarray", ".zgroup"))


@contextlib.contextmanager
def atomic_output(
    path: PathLike,
    *,
    directory: bool = False,
    overwrite: bool = False,
    replaceable: tuple[Callable[[Path], bool], str] | None = None,
) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write into, moved into place on success.

    On any exception (also ``KeyboardInterrupt``) the temporary is removed and ``path``
    stays as it was; after a SIGKILL the next write to ``path`` removes it (see
    :func:`remove_stale_temporaries`). An existing ``path`` (also one created by
    someone else meanwhile) is replaced only with ``overwrite``, and an existing
    directory only if ``replaceable`` accepts it.

    Parameters
    ----------
    path : str or os.PathLike
        The final output.
    directory : bool, default=False
        Yield an empty directory (a Zarr store, a saved model) instead of an empty file.
    overwrite : bool, default=False
        Replace an existing ``path``.
    replaceable : (callable, str), optional
        A test that an existing directory is one of ours, and what it should be (for
        the error message); by default a Zarr store.

    Yields
    ------
    tmp : pathlib.Path
        Where to write.

    Raises
    ------
    FileExistsError
        If ``path`` exists (at the end) and ``overwrite`` is False, or is a directory
        that ``replaceable`` refuses.
    OSError
        If the temporary cannot be created or written; the message names ``path``.
    """
    path = Path(os.fspath(path))
    remove_stale_temporaries(path)
    tmp, lock = _make_temp(path, directory=directory)
    try:
        try:
            yield tmp
        except OSError as exc:
            if _mentions(exc, tmp):
                raise _naming(exc, path, "cannot write") from exc
            raise
        _move_into_place(tmp, path, overwrite, replaceable or (_is_zarr_store, "a Zarr store"))
    except BaseException:
        _remove(tmp)
        raise
    finally:
        _close(lock)


def _move_into_place(
    tmp: Path, path: Path, overwrite: bool, replaceable: tuple[Callable[[Path], bool], str]
) -> None:
    with _directory_lock(path.parent):
        trash = _swap(tmp, path, overwrite, replaceable)
    if trash is not None:
        old, lock = trash
        try:
            _remove(old)
        finally:
            _close(lock)


def _swap(tmp, path, overwrite, replaceable) -> tuple[Path, int | None] | None:
    exists = path.exists() or path.is_symlink()
    if exists and not overwrite:  # created by someone else while we were writing
        raise FileExistsError(
            f"'{path}' already exists; pass overwrite=True (CLI: --overwrite) to replace it."
        )
    if not exists or (tmp.is_file() and not path.is_dir()):
        os.replace(tmp, path)  # atomic for files
        return None
    ours, what = replaceable
    if path.is_dir() and not ours(path):
        # overwrite=True replaces an output, never an unrelated folder of the user's.
        raise FileExistsError(
            f"'{path}' is a directory that is not {what}; refusing to replace it."
        )
    # A directory cannot be atomically replaced: set the old one aside (locked, so that
    # no other run takes it for stale), move the new one in, then delete the old one,
    # restoring it if the move fails.
    trash = _temp_path(path, secrets.token_hex(_TOKEN_HEX // 2), "old")
    lock = _try_lock(path)
    os.replace(path, trash)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(trash, path)
        _close(lock)
        raise
    return trash, lock


# ------------------------------------------------------------------------ path checks
def check_writable(path: PathLike, *, overwrite: bool = False, option: str = "output") -> Path:
    """Check, before any work, that ``path`` can be written.

    Parameters
    ----------
    path : str or os.PathLike
        The output.
    overwrite : bool, default=False
        Whether an existing ``path`` may be replaced.
    option : str, default="output"
        How messages call it (a CLI option such as ``--report``).

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If its folder does not exist.
    PermissionError, OSError
        If a file cannot be created in its folder (read-only, no permission); the
        message names ``path``, not a temporary.
    """
    path = Path(os.fspath(path))
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(f"{option} '{path}' exists; pass --overwrite to replace it.")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"the folder of {option} '{path}' does not exist: '{parent}'.")
    remove_stale_temporaries(path)
    # Create and remove a temporary of our naming: os.access would not see a read-only
    # mount as seen by root, nor quotas.
    tmp, lock = _make_temp(path, directory=False)
    _close(lock)
    _remove(tmp)
    return path


def _identity(path: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _same(a: Path, b: Path) -> bool:
    if _identity(a) == _identity(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def _within(inner: Path, outer: Path) -> bool:
    """Whether ``inner`` lies strictly inside the directory ``outer`` (resolved paths)."""
    inner_r, outer_r = _identity(inner), _identity(outer)
    return inner_r != outer_r and inner_r.is_relative_to(outer_r)


def check_distinct_paths(
    inputs: Sequence[PathLike], outputs: Mapping[str, PathLike | None]
) -> None:
    """Refuse outputs that are, hold or lie inside an input, or name the same file.

    An HDF5 file or a Zarr group given as input is replaced whole by an output of the
    same name, so an output equal to an input is refused whatever ``--overwrite`` says
    (this package never adds a dataset into an existing container). An output that is
    a directory holding an input (a Zarr group around an array given by its path), or
    that would go inside an input store, is refused too.

    Parameters
    ----------
    inputs : sequence of path-like
        Files or stores that are read.
    outputs : mapping of str to path-like or None
        Option name (``"-o"``, ``"--report"``, ...) to the path it writes; ``None``
        entries are skipped.

    Raises
    ------
    OutputPathError
        Naming the two options and paths in conflict.
    """
    named = [(name, Path(os.fspath(p))) for name, p in outputs.items() if p is not None]
    for name, out in named:
        for source in inputs:
            src = Path(os.fspath(source))
            if _same(out, src):
                raise OutputPathError(
                    f"{name} '{out}' is the input '{src}': refusing to replace data that is "
                    "read (also with --overwrite); write to a new file."
                )
            if _within(src, out):
                raise OutputPathError(
                    f"{name} '{out}' contains the input '{src}': replacing it would delete "
                    "the input; write to a new file."
                )
            if _within(out, src):
                raise OutputPathError(
                    f"{name} '{out}' lies inside the input '{src}'; write outside it."
                )
    for i, (name_a, a) in enumerate(named):
        for name_b, b in named[i + 1 :]:
            if _same(a, b) or _within(a, b) or _within(b, a):
                raise OutputPathError(
                    f"{name_a} '{a}' and {name_b} '{b}' are the same path: each output "
                    "needs its own file."
                )


def check_output_paths(
    inputs: Sequence[PathLike],
    outputs: Mapping[str, PathLike | None],
    *,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Every check of a command's paths, before any work: distinct, then writable.

    Parameters
    ----------
    inputs : sequence of path-like
        What the command reads.
    outputs : mapping of str to path-like or None
        Option name to output path; ``None`` entries are skipped.
    overwrite : bool, default=False
        Whether existing outputs may be replaced.

    Returns
    -------
    outputs : dict of str to pathlib.Path
        The non-``None`` outputs.

    Raises
    ------
    OutputPathError, FileExistsError, FileNotFoundError, OSError
        See :func:`check_distinct_paths` and :func:`check_writable`.
    """
    check_distinct_paths(inputs, outputs)
    return {
        name: check_writable(p, overwrite=overwrite, option=name)
        for name, p in outputs.items()
        if p is not None
    }
