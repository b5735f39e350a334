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


class StatisticsError(AutoproxyError):
    """A model or batch from which the statistics cannot be computed."""


class GroundTruthError(AutoproxyError):
    """A ground-truth output file that cannot be resumed (other settings, malformed rows)."""


class UnknownProxyError(AutoproxyError):
    """A proxy name that the registry does not hold."""


class ConfigError(AutoproxyError):
    """A search config (file, name or option) is missing or invalid."""


class RegistryError(AutoproxyError):
    """A proxy that cannot be found, saved or trusted (the message names the file or name)."""


class RunError(AutoproxyError):
    """A run directory that cannot be inspected (the message names it)."""


class ExportError(AutoproxyError):
    """A formula or module that cannot be exported (the message names the culprit)."""
