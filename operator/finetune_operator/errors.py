"""Domain errors. The domain raises these; `handlers/errors.py` maps them onto kopf once."""


class SpecError(Exception):
    """A user mistake: retrying cannot help. The message says what to change.

    Parameters
    ----------
    reason
        CamelCase reason for the condition and Event (`DatasetInvalid`, `NoHardwareFits`).
    message
        What is wrong and what the user can do, with fields in backquotes.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class RetryLater(Exception):
    """A transient failure (API 5xx, timeout, conflict): retry after `delay` seconds."""

    def __init__(self, message: str, delay: float = 30.0) -> None:
        super().__init__(message)
        self.message = message
        self.delay = delay
