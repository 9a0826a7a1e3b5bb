"""Users, organisations and access tokens of the stand-in."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_TOKEN = "hf_test_token_123"
"""Write token of user ``tester``, member of ``test-org``; valid on every server unless removed."""
DEFAULT_USER = "tester"
DEFAULT_ORG = "test-org"

Role = Literal["read", "write"]


def account_id(name: str) -> str:
    """Return a stable 24-hex account id for a user or org name (the Hub's ids look like this).

    Parameters
    ----------
    name : str
        User or organisation name.

    Returns
    -------
    str
        24 hex characters.
    """
    return hashlib.sha1(f"account:{name}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class TokenOwner:
    """Who a token belongs to and what it may do."""

    user: str
    """User name."""
    orgs: tuple[str, ...] = ()
    """Organisations the user belongs to."""
    role: Role = "write"
    """``write`` tokens may create repos, commit and run jobs; ``read`` tokens only read."""

    def namespaces(self) -> set[str]:
        """Namespaces this token's user owns or belongs to."""
        return {self.user, *self.orgs}

    def can_write(self, namespace: str) -> bool:
        """Whether the token may write under ``namespace``."""
        return self.role == "write" and namespace in self.namespaces()

    def whoami(self, token_name: str) -> dict[str, Any]:
        """Body of ``GET /api/whoami-v2`` for this token."""
        return {
            "type": "user",
            "id": account_id(self.user),
            "name": self.user,
            "fullname": self.user.title(),
            "email": f"{self.user}@example.invalid",
            "emailVerified": True,
            "canPay": True,
            "isPro": False,
            "periodEnd": None,
            "avatarUrl": "",
            "orgs": [
                {
                    "type": "org",
                    "id": account_id(org),
                    "name": org,
                    "fullname": org,
                    "email": None,
                    "canPay": True,
                    "periodEnd": None,
                    "avatarUrl": "",
                    "roleInOrg": "admin" if self.role == "write" else "read",
                    "isEnterprise": False,
                }
                for org in self.orgs
            ],
            "auth": {
                "type": "access_token",
                "accessToken": {
                    "displayName": token_name,
                    "role": self.role,
                    "createdAt": "2025-01-01T00:00:00.000Z",
                },
            },
        }


@dataclass
class TokenRegistry:
    """Valid tokens of a running stand-in; thread-safe, editable while the server runs."""

    _tokens: dict[str, TokenOwner] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def with_default(cls, extra_token: str | None = None) -> TokenRegistry:
        """Registry holding :data:`DEFAULT_TOKEN` (and ``extra_token`` for the same user, if given)."""
        registry = cls()
        registry.add(DEFAULT_TOKEN, DEFAULT_USER, orgs=(DEFAULT_ORG,))
        if extra_token:
            registry.add(extra_token, DEFAULT_USER, orgs=(DEFAULT_ORG,))
        return registry

    def add(self, token: str, user: str, orgs: tuple[str, ...] = (), role: Role = "write") -> None:
        """Register ``token`` for ``user``.

        Parameters
        ----------
        token : str
            The bearer token value.
        user : str
            Its user name (also a namespace).
        orgs : tuple[str, ...]
            Organisations the user belongs to.
        role : {"read", "write"}
            What the token may do.
        """
        with self._lock:
            self._tokens[token] = TokenOwner(user=user, orgs=tuple(orgs), role=role)

    def remove(self, token: str) -> None:
        """Revoke ``token``; later requests with it get 401."""
        with self._lock:
            self._tokens.pop(token, None)

    def lookup(self, token: str) -> TokenOwner | None:
        """Return the owner of ``token``, or ``None`` when it is not valid."""
        with self._lock:
            return self._tokens.get(token)

    def is_org(self, name: str) -> bool:
        """Whether ``name`` is an organisation some token's user belongs to."""
        with self._lock:
            return any(name in owner.orgs for owner in self._tokens.values())

    def __contains__(self, token: object) -> bool:
        with self._lock:
            return token in self._tokens

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._tokens))
