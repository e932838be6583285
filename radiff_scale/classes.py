"""The one table of class ids used everywhere (masks, catalogues, models, labels).

Ids follow the RADiff paper and the real mask bank: 0 background, 1 spurious,
2 compact, 3 extended. Survey-Collection annotations name the same classes
``sidelobe``, ``source`` and ``galaxy``; those names are accepted as aliases.
"""

from __future__ import annotations

from enum import IntEnum

from radiff_scale.errors import RadiffError


class SourceClass(IntEnum):
    BACKGROUND = 0
    SPURIOUS = 1
    COMPACT = 2
    EXTENDED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


#: Number of class ids, background included (one-hot width of a mask).
NUM_CLASSES = len(SourceClass)

#: Classes an object can have (background is never an object).
OBJECT_CLASSES: tuple[SourceClass, ...] = (
    SourceClass.SPURIOUS,
    SourceClass.COMPACT,
    SourceClass.EXTENDED,
)

#: RGB colours for quick-looks and grids (spurious red, compact green, extended blue, as in the paper).
CLASS_COLOURS: dict[SourceClass, tuple[int, int, int]] = {
    SourceClass.BACKGROUND: (0, 0, 0),
    SourceClass.SPURIOUS: (230, 60, 60),
    SourceClass.COMPACT: (60, 200, 80),
    SourceClass.EXTENDED: (70, 120, 255),
}

_ALIASES = {
    "background": SourceClass.BACKGROUND,
    "void": SourceClass.BACKGROUND,
    "spurious": SourceClass.SPURIOUS,
    "sidelobe": SourceClass.SPURIOUS,
    "compact": SourceClass.COMPACT,
    "source": SourceClass.COMPACT,
    "extended": SourceClass.EXTENDED,
    "galaxy": SourceClass.EXTENDED,
    # Newer INAF annotations split extended sources by island count.
    "extended-multisland": SourceClass.EXTENDED,
}


def class_from_name(name: str) -> SourceClass:
    """Return the class for a name or a Survey-Collection alias; a user error for anything else."""
    try:
        return _ALIASES[str(name).strip().lower()]
    except KeyError:
        known = ", ".join(sorted(_ALIASES))
        raise RadiffError(f"unknown class name {name!r} (known: {known})") from None


def class_from_id(value: int) -> SourceClass:
    """Return the class for an integer id; a user error for ids outside 0..3."""
    try:
        return SourceClass(int(value))
    except ValueError:
        raise RadiffError(f"unknown class id {value!r} (expected 0..{NUM_CLASSES - 1})") from None
