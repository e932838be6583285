"""Strict dataclass config loading: typos and wrong types are user errors naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from radiff_scale.config import from_dict, load_config, merge_overrides, parse_override, to_dict
from radiff_scale.errors import RadiffError


@dataclass
class Inner:
    rate: float = 3.0
    names: list[str] = field(default_factory=list)


@dataclass
class Outer:
    size: int = 128
    label: str = "x"
    enabled: bool = False
    inner: Inner = field(default_factory=Inner)
    optional: float | None = None


def test_yaml_and_overrides_resolve(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("size: 256\ninner:\n  rate: 2\n")
    cfg = load_config(Outer, path, dict([parse_override("inner.names=[a, b]"), parse_override("enabled=true")]))
    assert cfg.size == 256 and cfg.enabled is True
    assert cfg.inner.rate == 2.0 and isinstance(cfg.inner.rate, float)
    assert cfg.inner.names == ["a", "b"]
    assert to_dict(cfg)["inner"] == {"rate": 2.0, "names": ["a", "b"]}


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(RadiffError, match="sizee"):
        from_dict(Outer, {"sizee": 3})
    with pytest.raises(RadiffError, match=r"config\.inner: unknown key\(s\) rat"):
        from_dict(Outer, {"inner": {"rat": 1}})


@pytest.mark.parametrize(
    ("data", "fragment"),
    [({"size": "big"}, "size: expected a number"), ({"size": 1.5}, "whole number"), ({"enabled": 3}, "true or false")],
)
def test_wrong_types_are_user_errors(data: dict, fragment: str) -> None:
    with pytest.raises(RadiffError, match=fragment):
        from_dict(Outer, data)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("size: [1, 2\n")
    with pytest.raises(RadiffError, match="bad.yaml is not valid YAML"):
        load_config(Outer, bad)
    with pytest.raises(RadiffError, match="cannot read config"):
        load_config(Outer, tmp_path / "missing.yaml")


def test_override_syntax() -> None:
    with pytest.raises(RadiffError, match="key=value"):
        parse_override("size")
    assert merge_overrides({"a": {"b": 1}}, {"a.c": 2, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}
    assert parse_override("k=0.5") == ("k", 0.5)
