"""Write credentials: bearer tokens, each allowed to write some sources (or all of them).

A tokens file has one credential a line, `<token> <source>[,<source>...]`, or `<token> *` for
every source and the admin endpoints; `#` starts a comment. Without a file, writes are open
(a laptop, a test); `serve` says so in its log. Reads never need a credential.

>>> credentials = Credentials.parse("s3cret airbnb,vrbo\\nroot *\\n")
>>> sorted(credentials.sources_of("Bearer s3cret"))
['airbnb', 'vrbo']
"""

from __future__ import annotations

import hmac
from pathlib import Path

EVERY_SOURCE = "*"


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Credentials:
    def __init__(self, grants: dict[str, frozenset[str]]) -> None:
        self.grants = grants

    @classmethod
    def parse(cls, text: str, origin: str = "tokens") -> Credentials:
        grants: dict[str, frozenset[str]] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{origin} line {number}: expected '<token> <source>[,<source>...]' or '<token> *'")
            token, sources = parts
            grants[token] = frozenset(source.strip().lower() for source in sources.split(",") if source.strip())
        return cls(grants)

    @classmethod
    def load(cls, path: Path | None) -> Credentials | None:
        return None if path is None else cls.parse(path.read_text(), str(path))

    def sources_of(self, authorization: str | None) -> frozenset[str]:
        """What the request's credential may write; AuthError 401 without one, 403 if unknown."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "authorization: missing; expected 'Authorization: Bearer <token>'")
        for known, sources in self.grants.items():
            if hmac.compare_digest(known.encode(), token.strip().encode()):
                return sources
        raise AuthError(403, "authorization: the token is not valid here")


def check_sources(allowed: frozenset[str], sources: set[str] | list[str]) -> None:
    """403 naming the first source this credential may not write."""
    if EVERY_SOURCE in allowed:
        return
    for source in sorted(sources):
        if source not in allowed:
            raise AuthError(403, f"source: '{source}' may not be written with this credential; "
                                 f"it may write {', '.join(sorted(allowed)) or 'nothing'}")
