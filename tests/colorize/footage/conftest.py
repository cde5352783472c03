"""Shared set-up of the footage tests."""

from __future__ import annotations

import builtins
import sys
from typing import Callable

import pytest


@pytest.fixture
def hide_package(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``hide_package("name")``: for this test, importing ``name`` (or a submodule) fails as if
    it were not installed, also where it was imported before."""
    real_import = builtins.__import__
    hidden: set[str] = set()

    def guarded_import(name: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if any(name == package or name.startswith(package + ".") for package in hidden):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded_import)

    def hide(package: str) -> None:
        hidden.add(package)
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            monkeypatch.delitem(sys.modules, name)

    return hide
