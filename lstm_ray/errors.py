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
