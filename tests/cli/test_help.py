"""``--help`` shows every flag with its default and its variable."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from cirno.cli import build_parser
from cirno.options import ROLE_OPTIONS
from data_plane.gateway.settings import GatewaySettings
from data_plane.logic.settings import LogicSettings
from tests.cli.cli import cirno


def _help(*command: str) -> str:
    run = cirno(*command, "--help")
    assert run.code == 0, run
    return " ".join(run.out.split())  # argparse wraps lines: compare on words


def _flags(command: str) -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [
        flag
        for action in sub.choices[command]._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help"
    ]


def test_top_level_help_has_no_raw_markup() -> None:
    text = cirno("--help").out
    assert "``" not in text and "`" not in text
    for command in ("up", "chat", "control", "logic", "gateway", "cluster", "verify"):
        assert command in text


@pytest.mark.parametrize("command", ["up", "control", "logic", "gateway", "chat"])
def test_every_flag_shows_its_default_and_variable(command: str) -> None:
    text = _help(command)
    flags = _flags(command)
    assert flags, command
    for flag in flags:
        entry = re.search(re.escape(flag) + r" .*?\((default: [^)]*)\)", text)
        assert entry is not None, f"{command} {flag}: no default in\n{text}"
        if command != "chat" or flag == "--url":
            assert "env CIRNO_" in entry.group(1), f"{command} {flag}: {entry.group(1)}"


@pytest.mark.parametrize("command", ["cluster", "verify"])
def test_recipes_show_defaults(command: str) -> None:
    text = _help(command)
    for flag in _flags(command):
        assert re.search(re.escape(flag) + r" .*?\(default: ", text), f"{command} {flag}"


@pytest.mark.parametrize("role", ["control", "logic", "gateway"])
def test_roles_list_their_real_options(role: str) -> None:
    text = _help(role)
    for option in ROLE_OPTIONS[role]:
        assert option.flag in text and option.env in text
    assert "Required in the environment: CIRNO_" in text


def test_role_defaults_are_the_settings_defaults() -> None:
    """The defaults --help prints are the ones the settings use."""
    shown = {o.env: o.default for options in ROLE_OPTIONS.values() for o in options}
    fields = {
        f.name: f.default
        for cls in (GatewaySettings, LogicSettings)
        for f in dataclasses.fields(cls)
    }
    assert shown["CIRNO_GATEWAY_WS_HOST"] == fields["ws_host"]
    assert shown["CIRNO_GATEWAY_WS_PORT"] == str(fields["ws_port"])
    assert shown["CIRNO_GATEWAY_TCP_HOST"] == fields["tcp_host"]
    assert shown["CIRNO_GATEWAY_TCP_PORT"] == str(fields["tcp_port"])
    assert shown["CIRNO_LOGIC_PORT"] == str(LogicSettings.__dataclass_fields__["port"].default)
    assert shown["CIRNO_CONTROL_URL"] == GatewaySettings.__dataclass_fields__["control_url"].default
    assert shown["CIRNO_SESSION_URL"] == fields["session_url"]


def test_a_role_flag_sets_its_variable() -> None:
    """``cirno gateway --ws-port`` reaches the settings through its variable."""
    from cirno.options import apply_role_arguments

    args = build_parser().parse_args(["gateway", "--ws-port", "18000", "--zone", "z1"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CIRNO_CLUSTER_SECRET", "s")
        for name in ("CIRNO_GATEWAY_WS_PORT", "CIRNO_ZONE"):  # restored when done
            patch.setenv(name, "")
        assert apply_role_arguments(args, "gateway") == []
        settings = GatewaySettings.from_env()
    assert (settings.ws_port, settings.zone) == (18000, "z1")
