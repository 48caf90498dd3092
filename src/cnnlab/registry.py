"""One small registry used for models, datasets and recipes.

A registry maps a name to an object (a builder function, a dataset loader, a recipe). It refuses
duplicate names, and an unknown name raises :class:`UnknownNameError` listing the close matches,
so a typo on the command line is answered with a suggestion instead of a traceback.
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised by :meth:`Registry.get` for a name that is not registered.

    The message names the registry, the unknown name and the closest registered names.
    """

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


def did_you_mean(name: str, names: Iterable[str], n: int = 5) -> str:
    """``"; did you mean 'a', 'b'?"`` with up to ``n`` of ``names`` close to ``name`` (spelling
    first, then names that contain it; both case-blind: ``VGG16`` finds ``vgg16``), or ``""``
    when none is."""
    names = list(names)
    folded: dict[str, list[str]] = {}  # casefolded -> the names spelt so
    for c in names:
        folded.setdefault(c.casefold(), []).append(c)
    key = name.casefold()
    close = [c for f in difflib.get_close_matches(key, list(folded), n=n, cutoff=0.5) for c in folded[f]][:n]
    close += [c for c in names if key and key in c.casefold() and c not in close][: n - len(close)]
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def check_options(kind: str, name: str, keys: Iterable[str], options: list[str] | None) -> None:
    """Raise ValueError for the first of ``keys`` not among ``options`` (a model's or dataset's
    keyword options; ``None``: unknown, nothing checked), naming close matches and all options."""
    for key in keys:
        if options is not None and key not in options:
            raise ValueError(f"{kind} {name!r} has no option {key!r}{did_you_mean(key, options)} "
                             f"(its options: {', '.join(options) or 'none'})")


class Registry(Generic[T]):
    """A name -> object table with helpful errors.

    Args:
        kind: what the registry holds, used in error messages ("model", "dataset", "recipe").
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        """Add ``obj`` under ``name``.

        Raises:
            ValueError: if ``name`` is already registered (two definitions of one name is a bug).
        """
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        """Return the object registered under ``name``.

        Raises:
            UnknownNameError: if ``name`` is unknown; the message lists close matches.
        """
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def _unknown_message(self, name: str) -> str:
        return (f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}"
                f" (`cnnlab list {self.kind}s` shows all {len(self._items)})")

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the shell-style ``pattern`` (``"vgg*"``, ``"mnist-*"``)."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
