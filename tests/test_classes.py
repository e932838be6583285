"""The one class table, and its Survey-Collection aliases."""

import pytest

from radiff_scale.classes import NUM_CLASSES, OBJECT_CLASSES, SourceClass, class_from_id, class_from_name
from radiff_scale.errors import RadiffError


def test_ids_match_the_mask_bank_convention() -> None:
    assert [int(c) for c in SourceClass] == [0, 1, 2, 3]
    assert [c.label for c in SourceClass] == ["background", "spurious", "compact", "extended"]
    assert NUM_CLASSES == 4 and SourceClass.BACKGROUND not in OBJECT_CLASSES


@pytest.mark.parametrize(
    ("name", "expected"),
    [("sidelobe", SourceClass.SPURIOUS), ("Source", SourceClass.COMPACT), (" galaxy ", SourceClass.EXTENDED),
     ("extended", SourceClass.EXTENDED)],
)
def test_aliases(name: str, expected: SourceClass) -> None:
    assert class_from_name(name) is expected


def test_unknown_names_and_ids_are_user_errors() -> None:
    with pytest.raises(RadiffError, match="unknown class name 'quasar'"):
        class_from_name("quasar")
    with pytest.raises(RadiffError, match="unknown class id 7"):
        class_from_id(7)


def test_newer_inaf_multi_island_name_reads_as_extended() -> None:
    assert class_from_name("extended-multisland") is SourceClass.EXTENDED
