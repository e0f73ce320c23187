"""Locators for shell scripts, split with shlex (never run): variables, flag values, switches, commands."""

from __future__ import annotations

import re
from typing import Any

from parity.refs.locators import locator
from parity.refs.source import Located, NotLocated, ShellCommand, SourceFile
from parity.refs.values import scalar

_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
_DECLARATIONS = {"export", "readonly", "declare", "local", "typeset"}


def shell_assignments(commands: list[ShellCommand]) -> list[tuple[str, str, int]]:
    """(name, value, line) of every `NAME=value` at the head of a command, in file order."""
    found = []
    for command in commands:
        words = list(zip(command.words, command.word_lines, strict=True))
        while words and (words[0][0] in _DECLARATIONS or words[0][0].startswith("-")):
            words.pop(0)
        for word, line in words:
            match = _ASSIGNMENT.fullmatch(word)
            if not match:
                break
            found.append((match[1], match[2], line))
    return found


_VARIABLE_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _flag_commands(source: SourceFile, spec: dict[str, Any]) -> list[ShellCommand]:
    program = spec.get("command")
    return [c for c in source.shell if program is None or c.words[0] == program]


def _resolve(source: SourceFile, word: str, used_at: int) -> tuple[str, int | None, str]:
    """A word that is exactly `$VAR`/`${VAR}` takes the script's last assignment before use."""
    match = _VARIABLE_REF.fullmatch(word)
    if not match:
        return word, None, ""
    name = match[1] or match[2]
    earlier = [
        (value, line)
        for var, value, line in shell_assignments(source.shell)
        if var == name and line < used_at
    ]
    if not earlier:
        return word, None, ""
    value, line = earlier[-1]
    return value, line, f"via {word} (used on line {used_at})"


@locator("shell_var", "name")
def shell_var(source: SourceFile, spec: dict[str, Any]) -> Located:
    """Last `NAME=value` assignment in the script."""
    assignments = [
        (value, line) for var, value, line in shell_assignments(source.shell) if var == spec["name"]
    ]
    if not assignments:
        raise NotLocated(f"no assignment {spec['name']}=...")
    value, line = assignments[-1]
    return Located(scalar(value), line)


@locator("shell_arg", "flag")
def shell_arg(source: SourceFile, spec: dict[str, Any]) -> Located:
    """The word after `flag` (or after `flag=`) on the first command line passing it; `$VAR` is resolved."""
    flag = spec["flag"]
    for command in _flag_commands(source, spec):
        for position, word in enumerate(command.words):
            if word == flag:
                if position + 1 >= len(command.words):
                    raise NotLocated(f"{flag} has no value")
                value, line = command.words[position + 1], command.word_lines[position + 1]
            elif word.startswith(flag + "="):
                value, line = word[len(flag) + 1 :], command.word_lines[position]
            else:
                continue
            resolved, assigned_at, detail = _resolve(source, value, line)
            return Located(scalar(resolved), assigned_at or line, detail)
    raise NotLocated(f"no command passes {flag}")


@locator("shell_flag", "flag")
def shell_flag(source: SourceFile, spec: dict[str, Any]) -> Located:
    """Whether a bare switch (e.g. `--apply_chat_template`) is passed: true where present, false if not."""
    for command in _flag_commands(source, spec):
        if spec["flag"] in command.words:
            return Located(True, command.word_lines[command.words.index(spec["flag"])])
    return Located(False, None, f"no command passes {spec['flag']}")


@locator("shell_command", "program")
def shell_command(source: SourceFile, spec: dict[str, Any]) -> Located:
    """The words of the first `program ...` command up to its first option: `accelerate launch x.py`."""
    for command in source.shell:
        if command.words[0] == spec["program"]:
            head = []
            for word in command.words:
                if word.startswith("-"):
                    break
                head.append(word)
            return Located(" ".join(head), command.line)
    raise NotLocated(f"no command runs {spec['program']}")
