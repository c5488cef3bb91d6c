"""HTTP basic authentication of the metrics endpoint: password hashes and the check of a request header.

Contract
--------
- One user (the site's Prometheus, ``basic_auth`` in its scrape config). The password is configured as a
  hash (:class:`ictal.alarms.config.MetricsBasicAuthConfig` ``password_hash``) or read from a file
  (``password_file``, e.g. a systemd credential), never written in the config in clear.
- Hash formats: ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (salt and hash in base64, the layout
  Django uses; standard library only; print one with ``python -m ictal.alarms.metrics_auth``), and bcrypt
  (``$2a$``, ``$2b$``, ``$2y$``: the format of Prometheus' own web config, ``htpasswd -nBC 10``), which
  needs the ``bcrypt`` package (refused at start, with the reason, when it is missing).
- :meth:`BasicAuth.check` takes the ``Authorization`` header value. A header it accepted once is
  remembered (its SHA-256, the last 4) and accepted again by a constant-time compare without the slow
  hash: a scrape every 15 s does not cost a key derivation each; an unknown header costs one. Callers run
  the slow path off their event loop (:mod:`ictal.alarms.metrics_http` gives it a thread of its own, so wrong
  passwords queue behind each other, not behind scrapes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import sys
import threading
from collections import deque
from pathlib import Path

from ictal.alarms.config import MetricsBasicAuthConfig

# OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256; about 0.3 s on one core, paid once per new header.
PBKDF2_ITERATIONS = 600_000
# Prometheus (and a second scraper, or a curl) re-send the same header; 4 covers a handful of clients.
REMEMBERED_HEADERS = 4


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """A ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` string for ``password``.

    Parameters
    ----------
    password : str
        UTF-8 text.
    iterations : int, default 600000
    salt : bytes, optional
        Default 16 random bytes.

    Returns
    -------
    hashed : str
        Salt and derived key in base64.

    Raises
    ------
    ValueError
        If ``iterations`` < 1 or the password is empty.
    """
    if iterations < 1:
        raise ValueError(f"pbkdf2 iterations is {iterations} (expected >= 1)")
    if not password:
        raise ValueError("metrics password is empty (expected a non-empty password)")
    salt = secrets.token_bytes(16) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def _pbkdf2_verifier(hashed: str):
    parts = hashed.split("$")
    if len(parts) != 4:
        raise ValueError(f"password_hash has {len(parts)} '$'-separated fields (expected 4: "
                         "pbkdf2_sha256$<iterations>$<salt>$<hash>)")
    _, iterations, salt_b64, key_b64 = parts
    try:
        rounds = int(iterations)
        salt, key = base64.b64decode(salt_b64, validate=True), base64.b64decode(key_b64, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"password_hash is not pbkdf2_sha256$<iterations>$<salt>$<hash> with an integer and "
                         f"two base64 fields ({exc})") from exc
    if rounds < 1 or not key:
        raise ValueError(f"password_hash has {rounds} iterations and a {len(key)}-byte hash (expected >= 1 and > 0)")

    def verify(password: bytes) -> bool:
        return hmac.compare_digest(hashlib.pbkdf2_hmac("sha256", password, salt, rounds, len(key)), key)

    return verify


def _bcrypt_verifier(hashed: str):
    try:
        import bcrypt  # optional: only sites that reuse a Prometheus web-config hash need it
    except ImportError as exc:
        raise ValueError("password_hash is a bcrypt hash but the bcrypt package is not installed (install it, "
                         "or use a pbkdf2_sha256 hash from `python -m ictal.alarms.metrics_auth`)") from exc
    encoded = hashed.encode()

    def verify(password: bytes) -> bool:
        try:
            return bcrypt.checkpw(password, encoded)
        except ValueError:  # a password bcrypt refuses (e.g. over 72 bytes) is a wrong one
            return False

    return verify


def _file_verifier(path: Path):
    try:
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"metrics basic_auth password_file {path} cannot be read: {exc.strerror}") from exc
    if not secret:
        raise ValueError(f"metrics basic_auth password_file {path} is empty (expected the password on one line)")
    expected = secret.encode()

    def verify(password: bytes) -> bool:
        return hmac.compare_digest(password, expected)

    return verify


class BasicAuth:
    """Check ``Authorization: Basic ...`` headers against one user and password.

    Parameters
    ----------
    config : MetricsBasicAuthConfig

    Raises
    ------
    ValueError
        If the hash is in no known format, names bcrypt without the package, or the password file
        cannot be read or is empty (the message names the field or file).
    """

    def __init__(self, config: MetricsBasicAuthConfig) -> None:
        self.username = config.username
        if config.password_file is not None:
            self._verify = _file_verifier(config.password_file)
        elif config.password_hash.startswith("pbkdf2_sha256$"):
            self._verify = _pbkdf2_verifier(config.password_hash)
        elif config.password_hash.startswith(("$2a$", "$2b$", "$2y$")):
            self._verify = _bcrypt_verifier(config.password_hash)
        else:
            raise ValueError(f"metrics basic_auth password_hash starts with {config.password_hash[:14]!r} "
                             "(expected pbkdf2_sha256$... or a bcrypt $2b$... hash)")
        self._accepted: deque[bytes] = deque(maxlen=REMEMBERED_HEADERS)
        self._lock = threading.Lock()

    def known(self, header: str | None) -> bool:
        """Whether ``header`` was accepted before (constant-time compare, no key derivation)."""
        if not header:
            return False
        digest = hashlib.sha256(header.encode("latin-1")).digest()
        with self._lock:
            accepted = list(self._accepted)
        return any(hmac.compare_digest(digest, seen) for seen in accepted)

    def check(self, header: str | None) -> bool:
        """Whether ``header`` (an ``Authorization`` value) carries the configured user and password.

        Returns False for a missing header, another scheme, bad base64 or a wrong user or password;
        raises nothing on client input.
        """
        if not header:
            return False
        if self.known(header):
            return True
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        user_ok = hmac.compare_digest(user, self.username.encode())
        password_ok = self._verify(password)  # always run: the time does not tell which one was wrong
        if not (user_ok and password_ok):
            return False
        with self._lock:
            self._accepted.append(hashlib.sha256(header.encode("latin-1")).digest())
        return True


def main(argv: list[str] | None = None) -> int:
    """``python -m ictal.alarms.metrics_auth``: read a password on stdin, print its pbkdf2_sha256 hash."""
    import getpass

    password = getpass.getpass("metrics password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
    try:
        print(hash_password(password))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
