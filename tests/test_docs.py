"""Every command has help text and is documented in the README (as sqlite-utils does)."""

from pathlib import Path

import click
import pytest

from survey_mailer.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from commands(command, path)
        else:
            yield " ".join(path), command


COMMANDS = dict(commands(cli))


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_command_has_help(runner, path):
    assert COMMANDS[path].help, f"{path} has no help text"
    result = runner(*path.split(), "--help")
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: cli {path}")


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_command_is_documented(path):
    assert f"`{path}" in README or f"survey-mailer {path}" in README, \
        f"README does not document `{path}`"


def test_spec_commands_exist():
    assert {"init", "contacts import", "contacts unsubscribe", "contacts list",
            "campaign create", "campaign list", "campaign preview", "campaign send",
            "report", "export responses"} <= set(COMMANDS)
