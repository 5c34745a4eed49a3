"""User-facing errors: each names the config key (or CLI flag), the bad value and the fix, in one line."""

import math
import reprlib

ERROR_LINE_LIMIT = 393  # characters of a printed error after `error: `: room for a section's list of valid keys
SHOWN_LIMIT = 100  # characters of a user's value quoted in an error


class ConfigError(ValueError):
    """Bad user input. `key` is the dotted config path; str(err) is one line meant for the user."""

    def __init__(self, key: str, message: str):
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}" if key else message)

    def __reduce__(self):
        # Ray pickles a trial's exception to the driver; the default would call ConfigError(str(err)) and fail.
        return type(self), (self.key, self.message)


class DataError(ConfigError):
    """The data named by the config cannot be used: missing file or column, too few rows, bad values."""


def one_line(err: BaseException | str, limit: int = 300) -> str:
    """The error's text as one line of printable characters, at most `limit` long (its type name when it has no
    text). For messages that quote another library's error: parse errors may carry binary bytes or whole
    documents.

    >>> one_line(ValueError("bad\\n  value"))
    'bad value'
    """
    text = " ".join("".join(c if c.isprintable() else " " for c in str(err)).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _ShortRepr(reprlib.Repr):
    """repr() cut short inside: a few items per list or mapping, a few levels deep, long text and numbers elided.
    Its work is bounded by those limits, however large (or alias-shared) the value is."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict, self.maxset = 2, 6, 6, 4, 6
        self.maxstring, self.maxlong, self.maxother = 60, 40, 60

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 10_000:  # repr() of a very long int is slow, and refused past 4300 digits
            return f"<a whole number of about {int(x.bit_length() * math.log10(2))} digits>"
        return super().repr_int(x, level)


def shown(value: object) -> str:
    """`repr(value)` for an error message, shortened when long (`[1, 2, 3, 4, 5, 6, ...]`) so that a huge value
    quoted by a user stays a readable line.

    >>> shown(list(range(100)))
    '[0, 1, 2, 3, 4, 5, ...]'
    >>> shown("lstm")
    "'lstm'"
    """
    text = _ShortRepr().repr(value)
    return text if len(text) <= SHOWN_LIMIT else text[: SHOWN_LIMIT - 3] + "..."
