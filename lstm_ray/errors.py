"""User-facing errors: each names the config key (or CLI flag), the bad value and the fix, in one line."""


class ConfigError(ValueError):
    """Bad user input. `key` is the dotted config path; str(err) is one line meant for the user."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class DataError(ConfigError):
    """The data named by the config cannot be used: missing file or column, too few rows, bad values."""
