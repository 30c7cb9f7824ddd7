"""The output policy: where deeplsm may write, checked at the door, and how it replaces folders.

Every folder deeplsm writes holds a marker file, :data:`MARKER` (``.deeplsm``), that names the
entries deeplsm owns there. An output path given by the user (``--out``) must be

* a new folder, an empty folder, or a folder that deeplsm wrote (it has the marker);
* not the current folder, not a folder that contains the current folder or an input, and not
  inside an input folder;

and a folder that deeplsm wrote is replaced only with ``--overwrite`` (or reused, where a
command resumes by design: ``study``, ``demo``, ``train --resume``, ``explain``). Replacing a
folder replaces deeplsm's own entries only; anything else the user put there stays. Nothing here
ever deletes a folder that deeplsm did not write.

Temporary files and folders are siblings named ``.NAME.deeplsm-tmp-PID-XXXX``; ones left by a
killed process (whose PID is gone) are removed the next time an output goes there.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from deeplsm.exceptions import DeepLSMError

MARKER = ".deeplsm"
TMP_TAG = ".deeplsm-tmp-"
_TMP_RE = re.compile(r"^\..*\.deeplsm-tmp-(\d+)-[^/]*$")

#: Readable explanations of the errno values a user can act on.
_ERRNO_TEXT = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a path component is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.ELOOP: "symlink loop",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "file name too long",
    errno.EMFILE: "too many open files",
    errno.EIO: "input/output error",
}


def describe_os_error(err: OSError) -> str:
    """One line for an :class:`OSError`: what went wrong and on which path."""
    what = _ERRNO_TEXT.get(err.errno or -1) or err.strerror or type(err).__name__
    where = err.filename
    if where is not None and err.filename2 is not None:
        return f"{what}: {where} -> {err.filename2}"
    if where is not None:
        return f"{what}: {where}"
    return f"{what} ({err})" if str(err) and what not in str(err) else what


# --- paths ---------------------------------------------------------------------------------------
def resolve_path(path: str | os.PathLike, what: str = "path") -> Path:
    """``path`` as an absolute path with ``~``, ``..`` and symlinks resolved (it need not exist).

    An empty string (an unset shell variable) and a symlink loop are errors naming ``what``.
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise DeepLSMError(f"{what} is empty")
    p = Path(text).expanduser()
    try:
        return p.resolve()
    except RuntimeError:  # Python < 3.13 reports a loop this way
        raise DeepLSMError(f"{what} {p}: symlink loop") from None
    except OSError as err:
        raise DeepLSMError(f"{what} {p}: {describe_os_error(err)}") from None


def absolute_input(path: str | os.PathLike | None, what: str = "path") -> str | None:
    """An input path (file, folder or glob) made absolute against the current folder, once, at the
    door. Symlinks are kept (a link's own name may carry the format, e.g. ``.lesions.npz``), and
    so is ``..``, which the operating system then resolves correctly through symlinks."""
    if path is None:
        return None
    text = os.fspath(path)
    if not str(text).strip():
        raise DeepLSMError(f"{what} is empty")
    return str(Path(text).expanduser().absolute())


def _input_root(path: str | os.PathLike) -> Path | None:
    """The existing file or folder an input argument names (for a glob, the folder it searches)."""
    s = os.fspath(path)
    if not str(s).strip():
        return None
    if any(c in str(s) for c in "*?[") and not Path(s).exists():
        head = re.split(r"[*?\[]", str(s), maxsplit=1)[0]
        s = os.path.dirname(head) or "."
    try:
        p = Path(s).expanduser().resolve()
    except (RuntimeError, OSError):
        return None
    return p if p.exists() else None


# --- markers -------------------------------------------------------------------------------------
def is_deeplsm_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder that deeplsm wrote (it holds the marker file)."""
    p = Path(path)
    return p.is_dir() and (p / MARKER).is_file()


def write_marker(folder: str | os.PathLike, *, owns: Iterable[str] = (), command: str | None = None,
                 own_contents: bool = False) -> None:
    """Write ``folder/.deeplsm``, owning the names in ``owns`` (plus those an existing marker owns).

    ``owns`` may hold ``fnmatch`` patterns (``fig6_*.png``) for files the writer adds later.
    ``own_contents`` also owns every entry the folder holds now: only for a folder deeplsm has
    just filled itself (a staging folder), never for one that may hold the user's files.
    """
    from deeplsm import __version__

    folder = Path(folder)
    old = _read_marker(folder)
    names = {e.name for e in folder.iterdir() if e.name != MARKER} if own_contents else set()
    owned = sorted(set(old.get("owns", [])) | names | set(owns))
    body = {"deeplsm": __version__,
            "created": old.get("created") or datetime.now(UTC).isoformat(timespec="seconds"),
            "owns": owned,
            "note": "deeplsm wrote this folder; with --overwrite it replaces the entries listed "
                    "in 'owns' and keeps everything else"}
    if command or old.get("command"):
        body["command"] = command or old.get("command")
    tmp = folder / f".{MARKER}{TMP_TAG}{os.getpid()}-m"
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(tmp, folder / MARKER)


def _read_marker(folder: Path) -> dict:
    try:
        body = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def owned_entries(folder: str | os.PathLike) -> list[Path]:
    """Entries of a deeplsm folder that deeplsm owns: those its marker names, marked subfolders,
    deeplsm's temporary files, and the marker itself."""
    folder = Path(folder)
    patterns = [str(p) for p in _read_marker(folder).get("owns", [])]
    out = []
    for e in folder.iterdir():
        if (e.name == MARKER or _TMP_RE.match(e.name) or any(fnmatch.fnmatchcase(e.name, p) for p in patterns)
                or (not e.is_symlink() and is_deeplsm_dir(e))):
            out.append(e)
    return out


# --- the door ------------------------------------------------------------------------------------
def prepare_output(
    out: str | os.PathLike | None,
    *,
    inputs: Sequence[str | os.PathLike | None] = (),
    overwrite: bool = False,
    resume: bool = False,
    allow_inside: Sequence[str | os.PathLike] = (),
    file: bool = False,
    siblings: Sequence[str] = (),
    what: str = "--out",
    hint: str | None = None,
) -> Path:
    """Check an output path against the policy before any work; return it resolved.

    Parameters
    ----------
    out : path
        The output folder (or file, with ``file=True``).
    inputs : sequence of paths
        The command's inputs (files, folders or globs); ``out`` may not contain one, nor (for a
        folder input) lie inside it. Missing inputs are skipped: the command reports them.
    overwrite : bool, default=False
        Allow replacing earlier deeplsm output in ``out``.
    resume : bool, default=False
        Allow writing into earlier deeplsm output in place (a command that resumes or adds).
    allow_inside : sequence of paths
        Input folders that ``out`` may lie inside (``explain`` writes into its run folder).
    file : bool, default=False
        ``out`` is one file (``evaluate``): it must be new, or earlier deeplsm JSON with
        ``overwrite``; so must each of ``siblings`` (suffixes of files written beside it).
    what : str
        How the user named the path, for messages.
    hint : str or None
        What to do about earlier deeplsm output, when the default advice does not fit.

    Returns
    -------
    Path
        ``out``, absolute, with symlinks and ``..`` resolved.
    """
    if out is None:
        raise DeepLSMError(f"{what} is required")
    path = resolve_path(out, what)
    shown = os.fspath(out)
    _check_ancestors(path, shown, what)
    cwd = Path.cwd().resolve()
    if not file:
        if path == cwd:
            raise DeepLSMError(f"{what} {shown} is the current folder; give a new folder for the output")
        if path in cwd.parents:
            raise DeepLSMError(f"{what} {shown} contains the current folder; give a new folder for the "
                               "output")
    inside_ok = {resolve_path(p) for p in allow_inside}
    for inp in inputs:
        if inp is None:
            continue
        root = _input_root(inp)
        if root is None:
            continue
        if root == path or path in root.parents:
            raise DeepLSMError(f"{what} {shown} contains the input {inp}; give a folder outside the inputs")
        if root.is_dir() and root in path.parents and root not in inside_ok:
            raise DeepLSMError(f"{what} {shown} is inside the input folder {inp}; give a folder outside "
                               "the inputs")
    if file:
        _check_output_file(path, shown, overwrite, siblings, what)
    else:
        check_output_dir(path, overwrite=overwrite, resume=resume, what=what, shown=shown, hint=hint)
    _check_writable(_existing_ancestor(path.parent if file else path), shown, what)
    clean_stale_temps(path.parent, only_for=path.name)
    if is_deeplsm_dir(path):
        clean_stale_temps(path, recursive=True)
    return path


def check_output_dir(path: str | os.PathLike, *, overwrite: bool = False, resume: bool = False,
                     what: str = "output folder", shown: str | None = None, hint: str | None = None) -> None:
    """Raise unless ``path`` is new, empty, or deeplsm's (and ``overwrite`` or ``resume`` allows it)."""
    path = Path(path)
    shown = shown or str(path)
    if path.is_symlink() and not path.exists():
        raise DeepLSMError(f"{what} {shown} is a broken symlink")
    if not path.exists():
        return
    if not path.is_dir():
        raise DeepLSMError(f"{what} {shown} is a file, not a folder")
    try:
        empty = next(path.iterdir(), None) is None
    except OSError as err:
        raise DeepLSMError(f"{what} {shown}: {describe_os_error(err)}") from None
    if empty:
        return
    if not is_deeplsm_dir(path):
        raise DeepLSMError(f"{what} {shown} is not empty and was not written by deeplsm; give a new or "
                           "empty folder (deeplsm never replaces files it did not write)")
    if not (overwrite or resume):
        raise DeepLSMError(f"{what} {shown} holds earlier deeplsm output; " + (hint or (
            "add --overwrite to replace it (only deeplsm's own files are replaced) or give a new folder")))


def _check_output_file(path: Path, shown: str, overwrite: bool, siblings: Sequence[str], what: str) -> None:
    if path.is_dir():
        raise DeepLSMError(f"{what} {shown} is a folder; give a file name such as results.json")
    ours = path.is_file() and _is_deeplsm_json(path)
    if path.exists() and not ours:
        raise DeepLSMError(f"{what} {shown} exists and was not written by deeplsm; give a new file name")
    if ours and not overwrite:
        raise DeepLSMError(f"{what} {shown} holds earlier deeplsm output; add --overwrite to replace it")
    for suffix in siblings:
        sib = path.with_suffix(suffix)
        if sib.is_dir() or (sib.exists() and not ours):
            raise DeepLSMError(f"{sib} exists and was not written by deeplsm; give another --out")


def _is_deeplsm_json(path: Path) -> bool:
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and "deeplsm" in (body.get("versions") or {})


def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_ancestors(path: Path, shown: str, what: str) -> None:
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise DeepLSMError(f"{what} {shown}: {parent} is a file, not a folder")


def _check_writable(folder: Path, shown: str, what: str) -> None:
    """Create and remove a probe file in ``folder``; a read-only folder is an error.

    The superuser can write into a folder without write permission; deeplsm still treats a
    folder that nobody may write to (mode without any ``w`` bit) as read-only.
    """
    if not folder.is_dir():
        raise DeepLSMError(f"{what} {shown}: {folder} is a file, not a folder")
    mode = folder.stat().st_mode
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise DeepLSMError(f"{what} {shown}: cannot write to {folder}: the folder is read-only "
                           f"(mode {stat.filemode(mode)})")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".probe{TMP_TAG}{os.getpid()}-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise DeepLSMError(f"{what} {shown}: cannot write to {folder}: "
                           f"{_ERRNO_TEXT.get(err.errno or -1, err.strerror)}") from None


# --- replacing and removing ----------------------------------------------------------------------
def make_temp_dir(target: Path, kind: str = "") -> Path:
    """A new hidden sibling folder of ``target`` for staging (see :func:`clean_stale_temps`)."""
    return Path(tempfile.mkdtemp(prefix=f".{target.name}{TMP_TAG}{os.getpid()}-{kind}", dir=target.parent))


def foreign_entries(folder: str | os.PathLike) -> list[Path]:
    """Entries under the deeplsm folder ``folder`` that deeplsm does not own, relative to it:
    the user's files, also inside deeplsm's own marked subfolders."""
    folder = Path(folder)
    owned = {e.name: e for e in owned_entries(folder)}
    found: list[Path] = []
    for e in folder.iterdir():
        if e.name not in owned:
            found.append(Path(e.name))
        elif e.name != MARKER and not e.is_symlink() and is_deeplsm_dir(e):
            found.extend(Path(e.name) / sub for sub in foreign_entries(e))
    return found


def install_dir(new: Path, target: Path) -> None:
    """Move the finished folder ``new`` onto ``target``.

    ``target`` may be missing, an empty folder, or a deeplsm folder: then deeplsm's own entries
    are replaced and every other entry (also inside deeplsm's marked subfolders) is kept where it
    was. Anything else is an error, and nothing is deleted.
    """
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise DeepLSMError(f"cannot write folder {target}: a file of that name exists")
    if not target.exists():
        os.replace(new, target)
        return
    if next(target.iterdir(), None) is None:
        os.replace(new, target)
        return
    if not is_deeplsm_dir(target):
        raise DeepLSMError(f"{target} is not empty and was not written by deeplsm; not replacing it")
    foreign = foreign_entries(target)
    new_owns = {e.name for e in owned_entries(new)}
    clash = [rel for rel in foreign if (new / rel).exists() or (len(rel.parts) == 1 and rel.name in new_owns)]
    if clash:
        raise DeepLSMError(f"{target / clash[0]} was not written by deeplsm and would be replaced; "
                           "move it away first")
    trash = make_temp_dir(target, "old-")
    old = trash / target.name
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    for rel in foreign:  # the user's own files stay where they were
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(old / rel, target / rel)
        for sub in rel.parents:  # a deeplsm subfolder kept for them stays marked as deeplsm's
            if sub != Path(".") and (old / sub / MARKER).is_file() and not (target / sub / MARKER).exists():
                shutil.copy2(old / sub / MARKER, target / sub / MARKER)
    shutil.rmtree(trash, ignore_errors=True)


def remove_output(path: str | os.PathLike) -> None:
    """Delete deeplsm's own entries of the deeplsm folder ``path`` (and the folder, once empty).

    The user's files stay, also inside deeplsm's marked subfolders. A folder without the marker
    is an error: deeplsm never deletes what it did not write.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not is_deeplsm_dir(path):
        raise DeepLSMError(f"refusing to delete {path}: it was not written by deeplsm")
    for e in owned_entries(path):
        if e.name == MARKER:
            continue
        if e.is_dir() and not e.is_symlink():
            if is_deeplsm_dir(e):
                remove_output(e)
            else:
                shutil.rmtree(e)
        else:
            e.unlink()
    (path / MARKER).unlink()
    if next(path.iterdir(), None) is None:
        path.rmdir()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike, *, only_for: str | None = None,
                      recursive: bool = False) -> list[Path]:
    """Remove temporary entries (``.NAME.deeplsm-tmp-PID-…``) whose process is gone.

    ``only_for`` limits the search to the temporaries of one entry name; ``recursive`` also
    searches every subfolder (used inside deeplsm's own folders only).
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    walker = os.walk(folder) if recursive else [(str(folder), [], [])]
    for root, _dirs, _files in walker:
        try:
            entries = list(Path(root).iterdir())
        except OSError:
            continue
        for e in entries:
            m = _TMP_RE.match(e.name)
            if not m or (only_for is not None and not e.name.startswith(f".{only_for}{TMP_TAG}")):
                continue
            if _pid_alive(int(m.group(1))):
                continue
            try:
                if e.is_dir() and not e.is_symlink():
                    shutil.rmtree(e)
                else:
                    e.unlink()
                removed.append(e)
            except OSError:
                continue
    return removed
