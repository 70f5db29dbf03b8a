"""The command line: --version, --help with examples everywhere, one-line errors with exit code 2."""

import argparse
import subprocess
import sys

import pytest
import yaml

from clipshift import __version__
from clipshift.cli.main import build_parser, main


def _subparsers(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subparsers(sub, (*prefix, name))


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "clipshift", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"clipshift {__version__}"
    out = subprocess.run([sys.executable, "-m", "clipshift", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "world" in out.stdout and "examples:" in out.stdout


def test_every_command_has_help_with_an_example():
    commands = list(_subparsers(build_parser()))
    assert {c for c, _ in commands} >= {
        ("world",),
        ("world", "export"),
        ("world", "calibrate"),
        ("theory",),
        ("bench", "world"),
        ("demo",),
    }
    for path, sub in commands:
        text = sub.format_help()
        assert "examples:" in text and "clipshift " + path[0] in text.split("examples:")[1], path


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["world", "spec", "--set", "backgrounds.rho=2"], "backgrounds.rho = 2"),
        (["world", "spec", "--spec", "/nonexistent.yaml"], "/nonexistent.yaml: file not found"),
        (["world", "describe", "--split", "sideways"], "unknown split 'sideways'"),
        (["world", "export", "--format", "csv", "--out", "x", "--n", "0"], "--n must be ≥ 1"),
        (["world", "calibrate", "--rho", "3"], "--rho must be in [0, 1]"),
    ],
)
def test_user_errors_are_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and err.count("\n") == 0 and err.startswith("clipshift: error: ")


def test_world_spec_prints_a_loadable_spec(tmp_path, capsys):
    from clipshift import configio
    from clipshift.world import WorldSpec

    assert main(["world", "spec", "--set", "concepts.n_classes=7"]) == 0
    text = capsys.readouterr().out
    (tmp_path / "w.yaml").write_text(text)
    s = configio.load(WorldSpec, tmp_path / "w.yaml")
    assert s.concepts.n_classes == 7 and yaml.safe_load(text)["seed"] == 0


def test_export_format_choices_match_the_exporter():
    from clipshift.cli.world import EXPORT_FORMATS
    from clipshift.world.export import FORMATS

    assert tuple(EXPORT_FORMATS) == tuple(FORMATS)
