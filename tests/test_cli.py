"""The command line: help for every command, datasets end to end, user mistakes as one line + exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from radiff_scale.cli import build_parser, main

COMMANDS = ("simulate-dataset", "validate-dataset", "train", "make-map", "make-tile-bank", "validate", "demo")


def test_every_command_is_listed_and_has_help(capsys) -> None:
    parser = build_parser()
    text = parser.format_help()
    for command in COMMANDS:
        assert command in text
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: radiff-scale " + command in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    out = subprocess.run(["radiff-scale", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("radiff-scale ")


def test_simulated_dataset_is_reproducible_and_validates(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["simulate-dataset", "--n", "64", "--out", str(a), "--seed", "1"]) == 0
    assert main(["simulate-dataset", "--n", "64", "--out", str(b), "--seed", "1"]) == 0
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.fits"))
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*.fits"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
    capsys.readouterr()
    assert main(["validate-dataset", str(a)]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["n_samples"] == 64 and counts["n_empty_masks"] == 0
    assert all(counts["objects_per_class"][c] > 0 for c in ("spurious", "compact", "extended"))


def test_path_traversal_in_a_dataset_is_a_one_line_error(tmp_path: Path) -> None:
    root = tmp_path / "d"
    assert main(["simulate-dataset", "--n", "2", "--out", str(root), "--seed", "2"]) == 0
    annotation = sorted((root / "annotations").glob("*.json"))[0]
    data = json.loads(annotation.read_text())
    data["objs"][0]["mask"] = "../../etc/passwd"
    annotation.write_text(json.dumps(data))
    out = subprocess.run([sys.executable, "-m", "radiff_scale.cli", "validate-dataset", str(root)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "passwd" in lines[0] and annotation.name in lines[0]
    assert "Traceback" not in out.stderr


def test_bad_simulator_options_are_one_line_errors(tmp_path: Path, capsys) -> None:
    assert main(["simulate-dataset", "--n", "2", "--out", str(tmp_path / "x"), "--set", "mask_nsigma=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "mask_nsigma" in err and "\n" not in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    assert main(["simulate-dataset", "--n", "2", "--out", str(busy)]) == 2
    assert "busy" in capsys.readouterr().err
