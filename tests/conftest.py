"""Shared pytest set-up: nothing here may need a GPU, network or files outside tests/."""

from __future__ import annotations

import os

# Encoders such as SVT-AV1 print banners unless told not to; keep test output clean.
os.environ.setdefault("SVT_LOG", "1")
