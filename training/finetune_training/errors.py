"""The runtime's one error type: a CamelCase reason for the `error` event and a message for the user."""

HUB_UNAVAILABLE = "HubUnavailable"
"""The Hub could not be reached (5xx, 429, network, an `hf_xet` transfer failure) while the run read or pushed."""
RETRIED_REASONS = frozenset({HUB_UNAVAILABLE})
"""Runtime errors a new attempt can overcome (it resumes from the last checkpoint); every other reason the
runtime reports is final for the generation."""


class TrainingError(Exception):
    """A failure the runtime reports as an `error` event and exit code 1.

    Parameters
    ----------
    reason
        CamelCase reason (`DatasetNotFound`, `QLoRANeedsCUDA`).
    message
        What is wrong and what the user can do, with fields in backquotes.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
