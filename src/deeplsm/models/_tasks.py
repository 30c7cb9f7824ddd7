"""Task specification: the ordered outputs of a network, their kinds, columns and loss weights."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

from deeplsm.exceptions import DeepLSMError

#: Output kinds and what they mean.
#:
#: - ``regression01``: a score in [0, 1]; sigmoid, MSE (the paper's scores).
#: - ``regression``: an unbounded non-negative quantity such as age; leaky ReLU, MSE.
#: - ``binary``: a 0/1 label; sigmoid (the output is the probability of 1), binary cross-entropy.
#: - ``multiclass``: labels 0..k-1; softmax over k columns, cross-entropy.
KINDS = ("regression01", "regression", "binary", "multiclass")
REGRESSION_KINDS = ("regression01", "regression")


@dataclass(frozen=True)
class OutputSpec:
    """One output of a network.

    Parameters
    ----------
    name : str
        Column name in the score table.
    kind : {'regression01', 'regression', 'binary', 'multiclass'}, default='regression01'
        Activation and loss; see :data:`KINDS`.
    n_classes : int or None, default=None
        Number of classes; required for (and only for) ``multiclass``.
    weight : float, default=1.0
        Weight of this output's loss in the summed loss.
    """

    name: str
    kind: str = "regression01"
    n_classes: int | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DeepLSMError(f"output name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise DeepLSMError(
                f"output {self.name!r}: unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}"
            )
        if self.kind == "multiclass":
            if self.n_classes is None or int(self.n_classes) < 2:
                raise DeepLSMError(
                    f"output {self.name!r}: multiclass needs n_classes >= 2, got {self.n_classes}"
                )
            object.__setattr__(self, "n_classes", int(self.n_classes))
        elif self.n_classes not in (None, 1):
            raise DeepLSMError(f"output {self.name!r}: n_classes is only for multiclass outputs")
        else:
            object.__setattr__(self, "n_classes", None)
        w = float(self.weight)
        if not w >= 0:
            raise DeepLSMError(f"output {self.name!r}: loss weight must be >= 0, got {self.weight}")
        object.__setattr__(self, "weight", w)

    @property
    def width(self) -> int:
        """Number of columns this output occupies in the network's output."""
        return int(self.n_classes) if self.kind == "multiclass" else 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> OutputSpec:
        return cls(name=d["name"], kind=d.get("kind", "regression01"),
                   n_classes=d.get("n_classes"), weight=d.get("weight", 1.0))


class TaskSpec(Sequence):
    """An ordered list of :class:`OutputSpec`; the network's output columns follow this order.

    Examples
    --------
    >>> task = TaskSpec([OutputSpec("score_1"), OutputSpec("group", "multiclass", n_classes=3)])
    >>> task.total
    4
    >>> task.columns
    {'score_1': [0], 'group': [1, 2, 3]}
    >>> task.column("score_1")
    0
    """

    def __init__(self, outputs: Iterable[OutputSpec | dict | str]) -> None:
        outs: list[OutputSpec] = []
        for o in outputs:
            if isinstance(o, str):
                o = OutputSpec(o)
            elif isinstance(o, dict):
                o = OutputSpec.from_dict(o)
            outs.append(o)
        if not outs:
            raise DeepLSMError("a task needs at least one output")
        names = [o.name for o in outs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise DeepLSMError(f"duplicate output names: {', '.join(dup)}")
        self._outputs = tuple(outs)

    def __getitem__(self, i):  # type: ignore[override]
        return self._outputs[i]

    def __len__(self) -> int:
        return len(self._outputs)

    def __iter__(self) -> Iterator[OutputSpec]:
        return iter(self._outputs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskSpec) and self._outputs == other._outputs

    def __repr__(self) -> str:
        return f"TaskSpec({list(self._outputs)!r})"

    @property
    def names(self) -> list[str]:
        return [o.name for o in self._outputs]

    @property
    def total(self) -> int:
        """Total number of output columns."""
        return sum(o.width for o in self._outputs)

    @property
    def columns(self) -> dict[str, list[int]]:
        """Output name → its column indices in the concatenated output."""
        out, start = {}, 0
        for o in self._outputs:
            out[o.name] = list(range(start, start + o.width))
            start += o.width
        return out

    def column(self, name: str) -> int | list[int]:
        """The captum ``target`` for ``name``: an int, or the list of class columns (multiclass)."""
        cols = self.columns.get(name)
        if cols is None:
            raise DeepLSMError(f"unknown output {name!r}; outputs: {', '.join(self.names)}")
        return cols[0] if len(cols) == 1 else cols

    def get(self, name: str) -> OutputSpec:
        for o in self._outputs:
            if o.name == name:
                return o
        raise DeepLSMError(f"unknown output {name!r}; outputs: {', '.join(self.names)}")

    def subset(self, names: Sequence[str]) -> TaskSpec:
        return TaskSpec([self.get(n) for n in names])

    def to_list(self) -> list[dict]:
        return [o.to_dict() for o in self._outputs]
