"""``codegym sandbox``: the execution sandbox on this machine."""

from __future__ import annotations

import argparse
import json

from .common import add_command


def register(sub) -> None:
    sandbox = add_command(sub, "sandbox", None, "inspect the execution sandbox")
    actions = sandbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_command(actions, "info", _sandbox_info, "which protections are active on this machine")


def _sandbox_info(args: argparse.Namespace) -> int:
    from ..execution import Sandbox

    print(json.dumps(Sandbox.protections(), indent=2))
    return 0
