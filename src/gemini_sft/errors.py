"""Exception types, one per failure class.

Every error a user can meet derives from :class:`GeminiSftError`, so a caller
(the CLI, a component shell) can turn any of them into a clear message and a
non-zero exit without catching unrelated bugs.
"""


class GeminiSftError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(GeminiSftError):
    """A setting, parameter or configuration file is invalid."""


class InputFormatError(GeminiSftError):
    """Raw input cannot be read at all (missing file, unsupported encoding or container)."""


class DatasetInvalidError(GeminiSftError):
    """A tuning dataset breaks a rule Vertex applies; the message names lines and rules."""


class BudgetExceededError(GeminiSftError):
    """The estimated tuning cost is above the configured budget."""


class TuningSettingsError(GeminiSftError):
    """Tuning hyperparameters or options are not accepted for the chosen model or region."""


class TuningJobFailedError(GeminiSftError):
    """A tuning job ended FAILED, CANCELLED or EXPIRED."""


class TuningTimeoutError(GeminiSftError):
    """A tuning job did not end within the configured maximum wait."""


class VertexApiError(GeminiSftError):
    """A call to the Vertex API failed after its retries."""


class EvaluationError(GeminiSftError):
    """The evaluation could not produce scores (no holdout examples, every call failed, ...)."""


class GateError(GeminiSftError):
    """The promotion gate was given an invalid policy."""


class PromotionError(GeminiSftError):
    """Promoting or rolling back a model failed."""
