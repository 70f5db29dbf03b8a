"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

Handler = Any  # a callable taking the parsed argparse.Namespace and returning an exit code


def add_command(
    sub: Any, name: str, help: str, description: str, examples: str, handler: Handler
) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with worked examples."""
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + examples.rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=handler)
    return p


def add_group(sub: Any, name: str, help: str, description: str, examples: str) -> Any:
    """A command group (e.g. `clipshift world`) with its own subcommands."""
    p = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + examples.rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=lambda args: _print_help(p))
    return p.add_subparsers(title="commands", metavar="COMMAND")


def _print_help(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def add_set_arg(p: argparse.ArgumentParser, example: str, dest: str = "set") -> None:
    """The repeatable `--set dotted.path=VALUE` override that every config-taking command has."""
    p.add_argument(
        "--set",
        dest=dest,
        metavar="PATH=VALUE",
        action="append",
        default=[],
        help=f"override one field, e.g. --set {example} (repeatable; VALUE is parsed as YAML)",
    )


class LazyHelp(argparse.Action):
    """A plain value option whose help text is made when help is shown: `help_from()` may read a registry
    whose import (torch) every command would otherwise pay for at start-up."""

    def __init__(self, *args: Any, help_from: Callable[[], str], **kw: Any):
        super().__init__(*args, **kw)
        self._help_from = help_from

    @property
    def help(self) -> str:
        return self._help_from()

    @help.setter
    def help(self, value: str | None) -> None:
        pass  # argparse sets it in __init__; the text comes from help_from

    def __call__(
        self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None
    ) -> None:
        setattr(namespace, self.dest, values)


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def info(msg: str) -> None:
    """Human progress messages go to stderr so stdout stays machine-readable."""
    print(msg, file=sys.stderr, flush=True)
