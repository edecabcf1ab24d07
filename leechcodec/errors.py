"""Typed exceptions. The CLI maps each to one line on stderr and an exit code (README)."""


class LeechError(Exception):
    """Base class of every error leechcodec raises on purpose."""

    exit_code = 1


class InputImageError(LeechError):
    """The input image cannot be read or is outside the supported sizes/modes."""

    exit_code = 3


class FormatError(LeechError):
    """A .lq stream is malformed: bad magic, version, header field, length or checksum."""

    exit_code = 4


class ModelMismatchError(LeechError):
    """The stream was encoded with a different model than the one given for decoding."""

    exit_code = 5


class ModelError(LeechError):
    """A weights file is missing, not safetensors, or does not describe a known model."""

    exit_code = 6


class LimitError(LeechError):
    """An image or stream exceeds a configured resource limit (e.g. maximum pixels)."""

    exit_code = 7


class LeechWarning(UserWarning):
    """A lossy but allowed conversion of the input (alpha dropped, 16-bit reduced, …)."""
