"""Errors that the CLI reports as one line naming the culprit (never a traceback)."""


class AutoproxyError(Exception):
    """Base class: its message is shown to the user as is."""


class BenchmarkError(AutoproxyError):
    """A ground-truth file is missing or malformed (the message names the file and key)."""


class DataError(AutoproxyError):
    """An images file or dataset that cannot be read as labelled images (the message names it)."""


class InvalidArchError(AutoproxyError):
    """An encoding that the search space cannot build."""


class CacheError(AutoproxyError):
    """A statistics cache is missing, corrupt or incompatible."""


class ExpressionError(AutoproxyError):
    """An expression names an unknown primitive or is ill-typed."""
