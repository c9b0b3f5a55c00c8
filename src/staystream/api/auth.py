"""Write credentials: bearer tokens, each allowed to write some sources (or all of them).

A tokens file has one credential a line, `<token> <source>[,<source>...]`, or `<token> *` for
every source and the admin endpoints, optionally followed by a write rate limit
`rate=<writes a second>` and `burst=<writes at once>` (a token bucket per worker process,
`api/ratelimit.py`; default: no limit); `#` starts a comment. Without a file, writes are open
(a laptop, a test); `serve` says so in its log. Reads never need a credential.

>>> credentials = Credentials.parse("s3cret airbnb,vrbo rate=50 burst=100\\nroot *\\n")
>>> sorted(credentials.sources_of("Bearer s3cret"))
['airbnb', 'vrbo']
>>> credentials.credential_of("Bearer s3cret").rate
50.0
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

EVERY_SOURCE = "*"


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Credential:
    """One line of the tokens file; `name` (its line number) names it in logs and limits, never the token."""

    name: str
    sources: frozenset[str]
    rate: float | None = None  # writes a second; None: unlimited
    burst: float | None = None  # writes at once; default: one second's worth


class Credentials:
    def __init__(self, grants: dict[str, frozenset[str]], limits: dict[str, Credential] | None = None) -> None:
        self.grants = grants
        self.limits = limits or {token: Credential(f"grant {i}", sources)
                                 for i, (token, sources) in enumerate(grants.items())}

    @classmethod
    def parse(cls, text: str, origin: str = "tokens") -> Credentials:
        grants: dict[str, frozenset[str]] = {}
        limits: dict[str, Credential] = {}
        expected = "expected '<token> <source>[,<source>...]' or '<token> *', then optionally rate=N burst=N"
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) < 2:
                raise ValueError(f"{origin} line {number}: {expected}")
            token, sources, options = parts[0], parts[1], dict(part.partition("=")[::2] for part in parts[2:])
            numbers: dict[str, float] = {}
            for key, value in options.items():
                try:
                    numbers[key] = float(value) if key in ("rate", "burst") and value.isascii() else float("nan")
                except ValueError:
                    numbers[key] = float("nan")
                if not numbers[key] > 0:
                    raise ValueError(f"{origin} line {number}: '{key}={value}' is not a positive rate=N or "
                                     f"burst=N; {expected}")
            grants[token] = frozenset(source.strip().lower() for source in sources.split(",") if source.strip())
            limits[token] = Credential(f"line {number}", grants[token], numbers.get("rate"), numbers.get("burst"))
        return cls(grants, limits)

    @classmethod
    def load(cls, path: Path | None) -> Credentials | None:
        return None if path is None else cls.parse(path.read_text(), str(path))

    def sources_of(self, authorization: str | None) -> frozenset[str]:
        """What the request's credential may write; AuthError 401 without one, 403 if unknown."""
        return self.credential_of(authorization).sources

    def credential_of(self, authorization: str | None) -> Credential:
        """The request's credential; AuthError 401 without one, 403 if unknown."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "authorization: missing; expected 'Authorization: Bearer <token>'")
        for known, credential in self.limits.items():
            if hmac.compare_digest(known.encode(), token.strip().encode()):
                return credential
        raise AuthError(403, "authorization: the token is not valid here")


def check_sources(allowed: frozenset[str], sources: set[str] | list[str]) -> None:
    """403 naming the first source this credential may not write."""
    if EVERY_SOURCE in allowed:
        return
    for source in sorted(sources):
        if source not in allowed:
            raise AuthError(403, f"source: '{source}' may not be written with this credential; "
                                 f"it may write {', '.join(sorted(allowed)) or 'nothing'}")
