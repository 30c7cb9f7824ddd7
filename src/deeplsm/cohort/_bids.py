"""BIDS lesion masks: parse entities from file names, pick subject IDs, handle sessions and spaces.

A regular expression over BIDS entities, not pybids (heavy) and not
``nilearn.interfaces.bids.parse_bids_filename``, whose return format changed in nilearn 0.13
(this package supports 0.10 and later) and which accepts any name at all; the tests check that
both parsers agree on every BIDS name.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deeplsm.exceptions import DeepLSMError

log = logging.getLogger("deeplsm")

_BIDS_NAME_RE = re.compile(
    r"^sub-(?P<sub>[A-Za-z0-9]+)"
    r"(?P<middle>(?:_[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)*)"
    r"_(?P<suffix>[A-Za-z0-9]+)"
    r"\.(?P<ext>(?i:nii(?:\.gz)?))$"
)
# The name deeplsm has always read: sub-XXX[_anything]_lesion.nii[.gz].
_LEGACY_RE = re.compile(r"^(sub-[A-Za-z0-9]+)(?:_.*)?_lesion\.nii(\.gz)?$")
_NIFTI_RE = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)

#: Template spaces (BIDS and TemplateFlow identifiers) in MNI coordinates. Any ``space-`` label
#: that starts with ``MNI`` also counts (``MNI152NLin2009cAsym``, ``MNI152NLin6Asym``,
#: ``MNI152Lin``, ``MNI305``, ``MNIColin27``, ...).
MNI_LIKE_SPACES = frozenset({"ICBM452AirSpace", "ICBM452Warp5Space", "IXI549Space"})


def is_mni_space(label: str) -> bool:
    """Whether a BIDS ``space-`` label names an MNI template space."""
    return label.upper().startswith("MNI") or label in MNI_LIKE_SPACES


@dataclass(frozen=True)
class BidsName:
    """The parts of a BIDS file name ``sub-<label>[_<key>-<label>]..._<suffix>.<extension>``.

    Attributes
    ----------
    entities : dict of str to str
        ``key -> label`` in file-name order, ``sub`` first.
    bare : tuple of str
        Parts without a ``-``, such as the source suffix ``T1w`` in
        ``sub-01_T1w_label-lesion_roi.nii.gz``.
    suffix : str
        The last part before the extension (``mask``, ``roi``, ``lesion``).
    extension : str
        ``nii`` or ``nii.gz``.
    """

    entities: dict[str, str]
    bare: tuple[str, ...]
    suffix: str
    extension: str

    @property
    def subject(self) -> str:
        """``sub-<label>``."""
        return f"sub-{self.entities['sub']}"

    @property
    def session(self) -> str | None:
        """The ``ses`` label (without ``ses-``), or None."""
        return self.entities.get("ses")

    @property
    def space(self) -> str | None:
        """The ``space`` label, or None."""
        return self.entities.get("space")

    @property
    def is_lesion_mask(self) -> bool:
        """``..._label-lesion_mask``, ``..._label-lesion_roi``, ``..._desc-*lesion*_mask`` or
        ``..._lesion``."""
        label = self.entities.get("label", "").lower()
        desc = self.entities.get("desc", "").lower()
        suffix = self.suffix.lower()
        return (
            suffix == "lesion"
            or (suffix in ("mask", "roi") and label == "lesion")
            or (suffix == "mask" and "lesion" in desc)
        )


def parse_bids_name(name: str) -> BidsName | None:
    """Parse a BIDS NIfTI file name; None when it is not one.

    Examples
    --------
    >>> ref = parse_bids_name("sub-01_ses-1_space-MNI152NLin2009cAsym_label-lesion_mask.nii.gz")
    >>> ref.subject, ref.session, ref.space, ref.is_lesion_mask
    ('sub-01', '1', 'MNI152NLin2009cAsym', True)
    >>> parse_bids_name("patient_3.nii") is None
    True
    """
    m = _BIDS_NAME_RE.match(Path(name).name)
    if m is None:
        return None
    entities = {"sub": m["sub"]}
    bare = []
    for part in m["middle"].split("_")[1:]:
        key, sep, label = part.partition("-")
        if not sep:
            bare.append(part)
        elif key in entities:
            return None  # an entity twice: not BIDS
        else:
            entities[key] = label
    return BidsName(entities, tuple(bare), m["suffix"], m["ext"].lower())


def is_lesion_file(path: Path) -> bool:
    """Whether ``path`` is named as a lesion mask (BIDS rules above, or ``sub-*_lesion.nii*``)."""
    ref = parse_bids_name(path.name)
    if ref is not None:
        return ref.is_lesion_mask
    return _LEGACY_RE.match(path.name) is not None


def find_bids_lesions(folder: Path) -> list[Path]:
    """Every lesion mask under ``folder``, recursively (raw ``sub-*/[ses-*/]anat/`` and
    ``derivatives/<pipeline>/sub-*/...`` layouts alike), sorted by path."""
    return sorted(p for p in folder.rglob("sub-*") if p.is_file() and is_lesion_file(p))


def subject_id_from_path(path: Path) -> str:
    """``sub-01[_ses-1]..._label-lesion_mask.nii.gz`` or ``sub-01_lesion.nii.gz`` → ``sub-01``;
    any other ``name.nii[.gz]`` → ``name``."""
    ref = parse_bids_name(path.name)
    if ref is not None:
        return ref.subject
    legacy = _LEGACY_RE.match(path.name)
    return legacy.group(1) if legacy else _NIFTI_RE.sub("", path.name)


def subject_ids_for(
    paths: Sequence[Path], session: str | None = None
) -> tuple[list[str], list[Path]]:
    """Subject IDs for lesion files, with the session rule; returns ``(ids, paths)``.

    A BIDS name gives ``sub-<label>``; ``sub-*_lesion.nii*`` gives ``sub-*``; any other name
    gives the file name without extension. Sessions:

    - ``session=None``: each subject must have masks from one session at most; the ID is
      ``sub-<label>``. A subject with masks from several sessions is an error that names it.
    - ``session='1'`` (or ``'ses-1'``): keep only the masks of that session; IDs ``sub-<label>``.
    - ``session='all'``: keep every session; a mask with a session gets the ID
      ``sub-<label>_ses-<label>``.

    Two files with the same ID are an error naming both. Non-MNI ``space-`` labels are warned
    about once, with their count.
    """
    refs = [parse_bids_name(p.name) for p in paths]
    if session is not None:
        session = str(session)
        if session != "all":
            session = session.removeprefix("ses-")
            found = sorted({r.session for r in refs if r is not None and r.session})
            keep = [i for i, r in enumerate(refs) if r is not None and r.session == session]
            if not keep:
                raise DeepLSMError(
                    f"no lesion masks of session {session!r} (a ses-{session} entity in the file "
                    "name); sessions found: " + (", ".join(found) if found else "none")
                )
            if len(keep) < len(paths):
                log.info("session %s: kept %d lesion masks, left out %d from other sessions "
                         "or without a session", session, len(keep), len(paths) - len(keep))
            paths = [paths[i] for i in keep]
            refs = [refs[i] for i in keep]
    ids = []
    for p, r in zip(paths, refs):
        if r is None:
            ids.append(subject_id_from_path(p))
        elif session == "all" and r.session:
            ids.append(f"{r.subject}_ses-{r.session}")
        else:
            ids.append(r.subject)
    if session is None:
        _check_one_session(ids, refs)
    by_id: dict[str, list[Path]] = defaultdict(list)
    for sid, p in zip(ids, paths):
        by_id[sid].append(p)
    dup = {sid: ps for sid, ps in by_id.items() if len(ps) > 1}
    if dup:
        sid, ps = next(iter(dup.items()))
        more = f" ({len(dup) - 1} other subject(s) too)" if len(dup) > 1 else ""
        raise DeepLSMError(
            f"{sid} has {len(ps)} lesion maps{more}: {', '.join(str(p) for p in ps[:4])}; "
            "point --lesions at one pipeline's folder (e.g. derivatives/<pipeline>) or give a "
            "glob that picks one mask per subject"
        )
    _warn_spaces(ids, refs)
    return ids, list(paths)


def _check_one_session(ids: list[str], refs: list[BidsName | None]) -> None:
    sessions: dict[str, set[str]] = defaultdict(set)
    for sid, r in zip(ids, refs):
        if r is not None and r.session:
            sessions[sid].add(r.session)
    multi = {sid: s for sid, s in sessions.items() if len(s) > 1}
    if multi:
        sid, ses = next(iter(multi.items()))
        more = f" (and {len(multi) - 1} other subject(s))" if len(multi) > 1 else ""
        raise DeepLSMError(
            f"{sid} has lesion masks from {len(ses)} sessions ({', '.join(sorted(ses))}){more}; "
            "choose one with --session LABEL, or --session all to keep each session as its own "
            f"subject ({sid}_ses-{sorted(ses)[0]}, ...)"
        )


def _warn_spaces(ids: list[str], refs: list[BidsName | None]) -> None:
    spaces = Counter(r.space for r in refs if r is not None and r.space)
    odd = [(sid, r.space) for sid, r in zip(ids, refs)
           if r is not None and r.space and not is_mni_space(r.space)]
    if odd:
        names = ", ".join(f"{sid} (space-{s})" for sid, s in odd[:5])
        warnings.warn(
            f"{len(odd)} of {len(ids)} lesion masks are not in an MNI space by their file names: "
            f"{names}{' ...' if len(odd) > 5 else ''}; every map must be in one MNI space",
            UserWarning,
            stacklevel=3,
        )
    elif len(spaces) > 1:
        warnings.warn(
            "the lesion masks name several MNI spaces ("
            + ", ".join(f"{s}: {n}" for s, n in spaces.most_common())
            + "); these templates differ by a few mm",
            UserWarning,
            stacklevel=3,
        )
