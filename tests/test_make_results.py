"""`make results` regenerates every results file the docs quote, but a full run takes hours, so no
test runs it. This one keeps its recipe from rotting: every command line of the `results` target
names a script or console command that exists, with flags its own argument parser accepts, and
every option file it trains from is there."""
import argparse
import importlib
import inspect
import os
import re
import shlex
import sys

import pytest

from restore.utils.scripts import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def results_commands() -> list[list[str]]:
    """The `results` target's commands, continuation lines joined, shell redirections dropped, each
    split into words after $(BIN)/."""
    with open(os.path.join(ROOT, "Makefile")) as f:
        text = f.read().replace("\\\n", " ")
    recipe = re.search(r"^results:.*\n((?:\t.*\n|\s*\n)*)", text, re.M).group(1)
    commands = []
    for line in recipe.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = re.split(r"\s[>|]|&&", line)[0]  # `cmd > file.tmp && mv ...`: the command alone
        words = shlex.split(line)
        assert words[0].startswith("$(BIN)/"), f"a results command not run from the venv: {line}"
        commands.append([words[0][len("$(BIN)/"):], *words[1:]])
    return commands


def console_scripts() -> dict:
    """{command: (module, function)} from setup.py's console_scripts."""
    with open(os.path.join(ROOT, "setup.py")) as f:
        return {name: (module, func) for name, module, func in
                re.findall(r'"([\w-]+)=([\w.]+):(\w+)"', f.read())}


class Parsed(Exception):
    """Raised by the patched parse_args once the real one has accepted the arguments."""


def main_of(command: list[str]):
    """(the main function, its argv, a label) for a results command."""
    if command[0] == "python":
        script = command[1]
        assert script.startswith("scripts/") and os.path.isfile(os.path.join(ROOT, script)), script
        return load_script(os.path.basename(script)[:-3]).main, command[2:], script
    module, _ = console_scripts()[command[0]]
    return importlib.import_module(module).main, command[1:], command[0]


COMMANDS = results_commands()


def test_the_recipe_was_read():
    assert len(COMMANDS) >= 20
    assert ["python", "scripts/quote_tables.py"] in COMMANDS  # the last step: the docs' quoted tables


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:2])[:60] for c in COMMANDS])
def test_each_results_command_parses(command, monkeypatch):
    main, argv, label = main_of(command)
    for i, word in enumerate(argv[:-1]):  # the option files it trains or tests from exist
        if word == "-opt":
            assert os.path.isfile(os.path.join(ROOT, argv[i + 1])), argv[i + 1]
    real = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(real(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [label, *argv])
    monkeypatch.chdir(ROOT)
    with pytest.raises(Parsed):  # SystemExit(2) instead: a flag its parser does not have
        main(argv) if inspect.signature(main).parameters else main()
