"""``python -m colorize`` runs the ``colorize`` command."""

from colorize.cli import main

main()
