"""Domain errors. The domain raises these; the phase machine decides what each means for the job.

Two kinds of user-facing problem, told apart by reason in one table (:data:`WAITING_REASONS`):

- a problem **the user or the world can fix** (a Secret that arrives later, a mapping added by the next
  commit, a budget raised, GPUs freeing up): the job waits in phase `Blocked`, re-checks on every spec
  change and on a bounded timer, and heals without being deleted;
- a problem that **can never work for this generation** (a flavor that does not exist, hyperparameters
  out of range, a model file that is not safetensors): the job fails, and only a new generation (a spec
  edit) re-evaluates it.
"""

WAITING_REASONS = frozenset(
    {
        # credentials: the Secret, its key or a valid token may be created later
        "TokenSecretNotFound",
        "TokenSecretKeyMissing",
        "TokenMissing",
        "TokenInvalid",
        # the Hub: a repo may be created, made public or shared later; an outage ends
        "DatasetNotFound",
        "DatasetInvalid",
        "ModelNotFound",
        "HubNotFound",
        "HubForbidden",
        "HubOffline",
        "HubPaymentRequired",  # credits or a payment method can be added
        # the world: GPUs free up, a backend is enabled, a budget is raised, RBAC is granted (any 403: see
        # `finetune_operator.cluster.rbac.api_error`)
        "NoHardwareFits",
        "BackendDisabled",
        "BudgetExceeded",
        "Forbidden",
    }
)
"""Reasons the user or the world can fix without a new FineTuneJob: the job waits instead of failing."""


class SpecError(Exception):
    """A problem retrying as-is cannot fix. The message says what to change.

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

    @property
    def fixable(self) -> bool:
        """Whether the user or the world can fix it for this generation (the job waits, not fails)."""
        return self.reason in WAITING_REASONS


class RetryLater(Exception):
    """A transient failure (API 5xx, timeout, conflict): retry after `delay` seconds."""

    def __init__(self, message: str, delay: float = 30.0) -> None:
        super().__init__(message)
        self.message = message
        self.delay = delay
