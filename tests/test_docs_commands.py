"""Every ``colorize ...`` / ``comfy-run ...`` / ``python examples/...`` command line shown in the
README and docs/ exists.

The command lines are taken from the fenced shell code blocks; for each one the (sub)command it
names is asked for ``--help`` in-process (click's CliRunner; the examples' own argparse), and every
flag the line shows must appear in that help. A renamed or removed flag, or a subcommand that no
longer exists, fails here instead of in a reader's terminal. Every relative link (file and
heading) must resolve too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from colorize.cli import DEFAULT_COMMAND as COLORIZE_DEFAULT_COMMAND
from colorize.cli import cli as colorize_main
from runner.cli import main as comfy_run_main

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
PROGRAMS = {"colorize": colorize_main, "comfy-run": comfy_run_main}
FLAG = re.compile(r"^--?[A-Za-z][\w-]*")
SHELL_COMMENT = re.compile(r"(^|\s)#.*$")  # a '#' starting a word, as the shell reads it


@dataclass(frozen=True)
class DocCommand:
    source: str  # file:line, for the failure message
    program: str
    words: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.source}: {self.program} {' '.join(self.words)}"


def _shell_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each fenced code block whose language is a shell."""
    blocks: list[tuple[int, list[str]]] = []
    language: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            if language is None:
                language, start, body = line.strip()[3:].strip().lower(), number + 1, []
            else:
                if language in SHELL_LANGUAGES:
                    blocks.append((start, body))
                language = None
        elif language is not None:
            body.append(line)
    return blocks


def _logical_lines(start: int, lines: list[str]) -> list[tuple[int, str]]:
    """Comments dropped; backslash continuations and indented synopsis continuations joined."""
    joined: list[tuple[int, str]] = []
    continuing = False
    for offset, line in enumerate(lines):
        stripped = SHELL_COMMENT.sub("", line).strip()
        indented_continuation = bool(joined) and line[:1].isspace() and stripped[:1] in "[-"
        if (continuing or indented_continuation) and joined:
            number, previous = joined[-1]
            joined[-1] = (number, f"{previous} {stripped}")
        else:
            joined.append((start + offset, stripped))
        continuing = stripped.endswith("\\")
        if continuing:
            number, current = joined[-1]
            joined[-1] = (number, current[:-1].rstrip())
    return joined


def _words(line: str) -> list[str]:
    """The words of one command up to a comment, pipe or ``&&``; synopsis brackets removed."""
    lexer = shlex.shlex(line.replace("[", " ").replace("]", " "), posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    words = []
    for word in lexer:
        if word and set(word) <= set("|&;<>"):
            break
        if word != "...":
            words.append(word)
    return words


def doc_commands() -> list[DocCommand]:
    found = []
    for path in DOC_FILES:
        for start, lines in _shell_blocks(path.read_text(encoding="utf-8")):
            for number, line in _logical_lines(start, lines):
                words = _words(line.removeprefix("$ "))
                if words[:1] == ["python"] and words[1:2] and words[1].startswith("examples/"):
                    words = words[1:]
                if words and (words[0] in PROGRAMS or words[0].startswith("examples/")):
                    source = f"{path.relative_to(ROOT)}:{number}"
                    found.append(DocCommand(source, words[0], tuple(words[1:])))
    return found


def example_help(script: str, words: tuple[str, ...]) -> str:
    """The argparse help of an example script, and of the subcommand the line names, if any."""
    name = f"docs_example_{Path(script).stem}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, ROOT / script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)

    def run_help(argv: list[str]) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
            module.main([*argv, "--help"])
        assert exit_info.value.code == 0, f"{script} {' '.join(argv)} --help failed"
        return out.getvalue()

    text = run_help([])
    commands = re.search(r"\{([\w,-]+)\}", text)
    names = commands.group(1).split(",") if commands else []
    for position, word in enumerate(words):
        if word in names:
            return text + run_help(list(words[:position + 1]))
    return text


def resolve(program: str, words: tuple[str, ...]) -> tuple[list[str], click.Command]:
    """The subcommand path a command line names, and that command; the default command if none."""
    root = PROGRAMS[program]
    ctx = click.Context(root)
    command: click.Command = root
    path: list[str] = []
    for word in words:
        if not isinstance(command, click.Group) or word.startswith("-"):
            break
        sub = command.get_command(ctx, word) if word in command.list_commands(ctx) else None
        if sub is None:
            break
        path.append(word)
        command = sub
    if command is root:
        default = COLORIZE_DEFAULT_COMMAND if program == "colorize" else root.default_command
        path, command = [default], root.get_command(ctx, default)
    return path, command


def names_a_missing_subcommand(path: list[str], words: tuple[str, ...]) -> bool:
    """A bare lowercase word where the default command's input file would be (``colorize keyframes``)."""
    took_default = not words or words[0] != path[0]
    return took_default and bool(words) and re.fullmatch(r"[a-z][a-z-]*", words[0]) is not None


def flags_shown(words: tuple[str, ...]) -> list[str]:
    flags = []
    for word in words:
        match = FLAG.match(word)
        if match:
            flags.append(match.group(0))
    return flags


COMMANDS = doc_commands()


def test_the_docs_show_commands_of_both_programs() -> None:
    programs = {command.program for command in COMMANDS}
    assert {"colorize", "comfy-run", "examples/bot_worker.py", "examples/registry_api.py"} <= programs
    assert len(COMMANDS) >= 30


def test_the_extraction_reads_continuations_comments_and_synopses() -> None:
    block = "comfy-run run x --param a=1 \\\n    --out out/    # a comment\n  [--json] [--quiet ...]\n"
    lines = _logical_lines(1, block.splitlines())
    assert len(lines) == 1
    assert _words(lines[0][1]) == ["comfy-run", "run", "x", "--param", "a=1", "--out", "out/", "--json", "--quiet"]
    assert flags_shown(("--ref", "1200=a.png", "-o", "x", "--set=a.b=1")) == ["--ref", "-o", "--set"]


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_every_documented_flag_exists(command: DocCommand) -> None:
    if command.program not in PROGRAMS:
        help_text = example_help(command.program, command.words)
        missing = [flag for flag in flags_shown(command.words)
                   if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text)]
        assert not missing, f"{command}: --help does not list {missing}"
        return
    path, resolved = resolve(command.program, command.words)
    assert resolved is not None, f"{command}: no such command"
    assert not names_a_missing_subcommand(path, command.words), f"{command}: no subcommand {command.words[0]!r}"
    result = CliRunner().invoke(PROGRAMS[command.program], [*path, "--help"], prog_name=command.program)
    assert result.exit_code == 0, f"{command}: --help failed: {result.output}"
    missing = [
        flag for flag in flags_shown(command.words)
        if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", result.output)
    ]
    assert not missing, f"{command}: {' '.join(path)} --help does not list {missing}"


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for a markdown file's headings (lowercase, punctuation dropped, '-' for ' ')."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def test_every_relative_link_of_the_docs_resolves() -> None:
    broken = []
    for path in DOC_FILES:
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", link):
                continue  # http(s), mailto: not checked (no network in tests)
            target, _, anchor = link.partition("#")
            linked = (path.parent / target).resolve() if target else path
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)}: {link} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{path.relative_to(ROOT)}: {link} (no such heading)")
    assert not broken, "\n".join(broken)
