"""The one exception family ansz raises on bad input.

Every failure a user can cause (a corrupt or truncated container, a hostile header, a wrong
argument) surfaces as an :class:`AnszError` subclass with a one-line message; the CLI prints
that line and exits non-zero. Anything else escaping is a bug.
"""


class AnszError(Exception):
    """Base class of every error ansz reports to users."""


class CorruptDataError(AnszError):
    """Compressed data is malformed, truncated, or fails a checksum."""


class FormatError(AnszError):
    """An input file claims a format (safetensors, GGUF) but breaks its rules."""


class UnsupportedError(AnszError):
    """Valid data that this version of ansz cannot handle (a newer format version, say)."""


class BaseMismatchError(AnszError):
    """A container compressed against a base file was given none, or another file: the
    message names the base it needs (file name, size, sha256)."""


class OutputExistsError(AnszError):
    """The output file exists and replacing it was not asked for (``overwrite=True``; the
    command line's ``-f``). ``path`` is the output's name."""

    def __init__(self, path: str, hint: str = "overwrite=True replaces it") -> None:
        super().__init__(f"{path} already exists ({hint})")
        self.path = path


class AnszIndexError(AnszError, IndexError):
    """An index a tensor slice cannot take (out of range, too many, or of a kind not
    supported), with numpy's message; an IndexError too, as numpy raises."""
