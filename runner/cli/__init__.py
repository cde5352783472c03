"""The ``comfy-run`` command line (console script ``comfy-run = runner.cli:main``).

``comfy-run WORKFLOW.json [options]`` runs a workflow file (the group's default command, also
reachable as ``comfy-run file WORKFLOW.json``); the catalog commands (``list``, ``show``, ``run``,
``batch``) come from :mod:`runner.cli.catalog`. Human progress goes to stderr, results (saved file
paths, or NDJSON with ``--json``) to stdout. Each finish state has its own exit code
(:class:`runner.errors.ExitCode`), listed in ``--help``.

Modules (imports run one way: app -> catalog -> run -> report, options):

* :mod:`~runner.cli.app` - the click group and the default ``file`` command;
* :mod:`~runner.cli.catalog` - ``list``, ``show``, ``run ID`` and ``batch``;
* :mod:`~runner.cli.run` - one workflow end to end (:func:`execute`), Ctrl-C cancels our prompt;
* :mod:`~runner.cli.report` - human and ``--json`` output;
* :mod:`~runner.cli.options` - the options every running command shares.
"""

from __future__ import annotations

from runner.cli.app import main
from runner.cli.options import EXIT_CODES_HELP, RunOptions, run_options
from runner.cli.run import execute

__all__ = ["EXIT_CODES_HELP", "RunOptions", "execute", "main", "run_options"]
