"""What every ``colorize`` command shows on the terminal: its log lines, and one line per error.

A user mistake (a :class:`~colorize.errors.ColorizeError`) becomes ``error: <message>`` and the
error's exit code, Ctrl-C a short note and exit 130: no traceback (``--verbose`` logs it).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

import click

from colorize.errors import INTERRUPTED_EXIT_CODE, ColorizeError

logger = logging.getLogger("colorize")


class ConsoleFormatter(logging.Formatter):
    """Notices as plain lines, problems prefixed with their level."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            message = f"{record.levelname.lower()}: {message}"
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return message


@contextlib.contextmanager
def console_logging(*, quiet: bool, verbose: bool) -> Iterator[None]:
    """Route the package's logs (and FFmpeg's, with --verbose) to stderr for one run.

    The previous logger state is restored afterwards, so running the command in-process
    (tests, embedding) leaves logging as it found it.
    """
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter())
    package, libav = logging.getLogger("colorize"), logging.getLogger("libav")
    saved = [(log, log.level, log.propagate) for log in (package, libav)]
    package.addHandler(handler)
    package.setLevel(level)
    package.propagate = False
    # FFmpeg's own messages are noise for users; --verbose shows them.
    libav.propagate = False
    if verbose:
        libav.addHandler(handler)
    try:
        yield
    finally:
        for log, old_level, old_propagate in saved:
            log.removeHandler(handler)
            log.setLevel(old_level)
            log.propagate = old_propagate


@contextlib.contextmanager
def reported_errors(ctx: click.Context, *, interrupted: str) -> Iterator[None]:
    """End the command with its exit code and one line on a user error; ``interrupted`` says
    what Ctrl-C left behind."""
    try:
        yield
    except ColorizeError as error:
        logger.debug("details", exc_info=True)
        click.echo(f"error: {error}", err=True)
        ctx.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {interrupted}", err=True)
        ctx.exit(INTERRUPTED_EXIT_CODE)
