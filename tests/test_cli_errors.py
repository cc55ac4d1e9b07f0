"""The CLI edge: errors the library raises (cra.errors) reach a person as one line, never a traceback."""

import sys
import types

import click
from click.testing import CliRunner

from cra import cli as cli_module
from cra.errors import CraError, NotFoundError


def _command_raising(exc):
    @click.command()
    def failing():
        raise exc

    return failing


def test_a_library_error_is_one_line_and_exit_status_1(monkeypatch):
    module = types.ModuleType("cra_test_failing")
    module.command = _command_raising(NotFoundError("run 7 does not exist; `cra runs` lists the runs"))
    monkeypatch.setitem(sys.modules, "cra_test_failing", module)
    monkeypatch.setitem(cli_module.COMMANDS, "failing", "cra_test_failing:command")

    result = CliRunner().invoke(cli_module.cli, ["failing"])

    assert result.exit_code == 1
    assert result.output == "Error: run 7 does not exist; `cra runs` lists the runs\n"
    assert isinstance(result.exception, SystemExit)


def test_errors_other_than_cra_errors_are_not_disguised(monkeypatch):
    module = types.ModuleType("cra_test_failing")
    module.command = _command_raising(ZeroDivisionError("a bug"))
    monkeypatch.setitem(sys.modules, "cra_test_failing", module)
    monkeypatch.setitem(cli_module.COMMANDS, "failing", "cra_test_failing:command")

    result = CliRunner().invoke(cli_module.cli, ["failing"])

    assert isinstance(result.exception, ZeroDivisionError)
    assert not isinstance(result.exception, CraError)
