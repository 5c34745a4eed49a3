"""User-facing errors: each names the config key (or CLI flag), the bad value and the fix, in one line."""


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
