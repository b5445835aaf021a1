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


class DeploymentError(PromotionError):
    """Deploying a model to an endpoint (upload, deploy, traffic, undeploy) failed or was refused."""


class TransientApiError(VertexApiError):
    """A Vertex call failed in a way worth retrying (429, 5xx, timeout, dropped connection)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class TuningStoppedError(TuningJobFailedError):
    """The step was told to stop (SIGTERM: the pipeline run was cancelled); the job was cancelled."""


class CleanInvariantError(GeminiSftError):
    """Internal error: rows read do not equal rows kept plus rows rejected. A bug; please report it."""


class LocalRunError(GeminiSftError):
    """The local pipeline run failed; the message names the step and the log file."""


class ScheduleNotFoundError(GeminiSftError):
    """No schedule (or more than one) matches the name, id or display name given."""


class ParameterValueError(ConfigError):
    """Parameter values do not fit the compiled spec's input definitions; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "The pipeline parameters do not match the compiled spec:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )


class PipelineRunFailedError(GeminiSftError):
    """A followed pipeline run ended FAILED or CANCELLED, or was not done in the time given."""


class GenerationCallError(EvaluationError):
    """One generation call failed; ``retryable`` says whether trying again may succeed."""

    def __init__(self, message: str, *, status_code: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retryable = retryable


class VertexRequestError(VertexApiError):
    """Vertex refused a call for good (4xx other than 408/429, or 501); ``status_code`` is the HTTP status."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class TrainingFileError(InputFormatError):
    """A tuning job's training or validation file cannot be read or is not Gemini JSONL."""
