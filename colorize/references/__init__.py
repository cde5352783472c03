"""References for a whole film: which frames need a colour reference, and their review.

* :mod:`~colorize.references.quality`: cheap per-frame measures and a score (near-black,
  blown-out, flat, fading, blur, exposure).
* :mod:`~colorize.references.grouping`: shots of the same set-up share one reference.
* :mod:`~colorize.references.picker`: :func:`pick_keyframes`, the streaming choice shared by
  ``colorize keyframes`` and the ComfyUI *Pick Keyframes* node (numpy frames in, keyframes and
  stills out; no file I/O, no torch).
* :mod:`~colorize.references.store`, :mod:`~colorize.references.folder`: the keyframes folder
  (``gray/ref_NNNNNN.png``, ``keyframes.json``); :mod:`~colorize.references.review`: its
  ``review.html`` and ``review.png``; :mod:`~colorize.references.cli`: the command.
"""

from colorize.references.picker import (
    FIRST_FRAME,
    LOW_SCORE,
    SHOT_START,
    Keyframe,
    KeyframePick,
    KeyframePicker,
    PickConfig,
    Still,
    Suggestion,
    gray_still,
    pick_keyframes,
    report_suggestions,
)
from colorize.references.quality import QualityConfig

__all__ = [
    "FIRST_FRAME",
    "Keyframe",
    "KeyframePick",
    "KeyframePicker",
    "LOW_SCORE",
    "PickConfig",
    "QualityConfig",
    "SHOT_START",
    "Still",
    "Suggestion",
    "gray_still",
    "pick_keyframes",
    "report_suggestions",
]
