"""``python -m runner.cli`` runs ``comfy-run``."""

from runner.cli.app import main

if __name__ == "__main__":  # pragma: no cover
    main()
