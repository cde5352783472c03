"""Exceptions a user can cause, each with its own exit code and a one-line message.

The CLI catches :class:`ColorizeError` and prints ``str(error)`` without a traceback; anything
else is a bug and keeps its traceback.

Exit codes (also listed in ``colorize --help`` and the README):

==  ===========================================================================
0   success
1   any other user-caused error (:class:`ColorizeError` itself)
2   bad command line (click's own usage errors)
3   reserved: out of GPU/host memory after every back-off step (engine)
5   ``colorize batch``: at least one video failed (the others are done)
6   ``colorize batch --ray``: Ray is not installed or the cluster cannot be reached
7   the network overflowed the half precision it ran in (fp16/bf16): rerun with ``--fp32``
8   the shots file (``--shots FILE``) is unreadable or its cut list is invalid
9   no colorizer could be built (:class:`ColorizerUnavailableError`)
10  input not found or not readable
11  input has no video stream
12  input stream is corrupt or truncated
13  input cannot be processed as a whole (frame size changes, mixed image sizes)
14  reference image not found or unreadable
15  output path already exists (use ``--overwrite``)
16  output container, codec or path is not supported
17  output could not be written (disk full, permission denied)
18  a checkpoint of an interrupted run exists and neither --resume nor --checkpoint-every was given
19  the checkpoint cannot be resumed: damaged, or made for another input, reference or settings
130 interrupted (Ctrl-C)
==  ===========================================================================

``colorize keyframes --generate`` reports a failure on a ComfyUI server with ``comfy-run``'s own
code for it (3 to 7, 9; see ``colorize keyframes --help``), except three that it moves because
the table above uses them: 27 a still took longer than ``--timeout`` (``comfy-run``'s 8), 28 a
reply that could not be understood (its 10), 29 a picture that could not be downloaded, read or
written (its 11).

Codes 20-39 are left to the weights and runner parts of the project.
"""

from __future__ import annotations


class ColorizeError(Exception):
    """Base class of every error caused by input, environment or configuration."""

    exit_code = 1


class ColorizerUnavailableError(ColorizeError):
    """No colorization model could be built (missing weights, missing implementation)."""

    exit_code = 9


class ShotListError(ColorizeError):
    """A shots file is unreadable, malformed, or lists cuts out of order or past the end."""

    exit_code = 8


class InputNotFoundError(ColorizeError):
    """The input path does not exist, cannot be read, or is not a media file."""

    exit_code = 10


class NoVideoStreamError(ColorizeError):
    """The input opened but holds no video (an audio file, an MP4 without samples...)."""

    exit_code = 11


class CorruptInputError(ColorizeError):
    """Decoding stopped early or failed; ``frames_decoded`` says how far it got."""

    exit_code = 12

    def __init__(self, message: str, frames_decoded: int = 0) -> None:
        super().__init__(message)
        self.frames_decoded = frames_decoded


class UnsupportedInputError(ColorizeError):
    """The input decodes but cannot be colorized as one clip (e.g. the frame size changes)."""

    exit_code = 13


class ReferenceUnreadableError(ColorizeError):
    """The reference image is missing, unreadable, not an image, or too large."""

    exit_code = 14


class OutputExistsError(ColorizeError):
    """The output path exists and ``--overwrite`` was not given."""

    exit_code = 15


class UnsupportedOutputError(ColorizeError):
    """The output extension, container or codec cannot be written."""

    exit_code = 16


class OutputWriteError(ColorizeError):
    """Writing the output failed (disk full, permission denied, encoder refused)."""

    exit_code = 17


class CheckpointExistsError(ColorizeError):
    """An interrupted run left a checkpoint beside the output; the user must choose."""

    exit_code = 18


class CheckpointUnusableError(ColorizeError):
    """The checkpoint is damaged or belongs to another input, reference or settings."""

    exit_code = 19


#: Exit code used when the user interrupts a run (128 + SIGINT, as shells do).
INTERRUPTED_EXIT_CODE = 130


class OutOfDeviceMemoryError(ColorizeError):
    """Even one frame at the smallest processing size does not fit in memory."""

    exit_code = 3


class DeviceUnavailableError(ColorizeError):
    """The requested device or precision cannot be used on this machine."""

    exit_code = 4


class PrecisionRangeError(DeviceUnavailableError):
    """The network's output left the range of the half precision it ran in (inf or NaN): the
    input drives an activation past what fp16 holds (65504). The message says to rerun in
    fp32."""

    exit_code = 7
