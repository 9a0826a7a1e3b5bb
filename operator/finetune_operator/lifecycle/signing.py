"""Per-attempt keys that sign the runtime's event lines, derived so a restarted operator can verify.

key(attempt) = HMAC-SHA256(operator key, "<job uid>/<attempt>"): the operator key (`eventsSigningKey`,
the chart's Secret) never leaves the operator; each run gets only its own attempt's key as a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from finetune_operator.config import OperatorConfig

# Without a configured key, one per process: events still authenticate, but a restarted operator cannot
# verify the lines of runs started before the restart (it then sees no progress from them).
_PROCESS_KEY = secrets.token_hex(32)


def events_key(config: OperatorConfig, uid: str, attempt: int) -> str:
    """The event-signing key of one attempt of one FineTuneJob (hex)."""
    master = config.events_signing_key.get_secret_value() if config.events_signing_key else _PROCESS_KEY
    return hmac.new(master.encode(), f"{uid}/{attempt}".encode(), hashlib.sha256).hexdigest()
