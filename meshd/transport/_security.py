"""Cluster secret and CURVE key material.

Theory of operation
-------------------
``meshd keygen`` writes a *cluster secret*: 32 random bytes, stored as one line
``meshd-secret-v1:<urlsafe base64>`` in a root-only file.  Every host of a
cluster holds the same secret.  From it we derive, deterministically, two
CURVE key pairs (BLAKE2b keyed with the secret, one personalisation per use):

* the *server* pair: every inter-host listening socket presents it, so a
  dialer that knows the secret knows which public key to expect, and a host
  without the secret cannot impersonate a member;
* the *client* pair: every dialer presents it, and the ZAP handler admits a
  connection only when the client's public key is the derived one.

So both ends prove that they hold the secret, and all traffic is encrypted.
A secret never travels; only public keys do, inside the CURVE handshake.

Scheduler clients get their *own* key pairs (``meshd keygen --client NAME``),
admitted by public key from ``api.clients_dir`` (see :func:`load_client_keys`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

SECRET_PREFIX = "meshd-secret-v1:"
CLIENT_KEY_PREFIX = "meshd-client-v1"  # then: NAME PUBLIC [SECRET], space-separated (Z85 has no spaces)


class SecretError(ValueError):
    """The cluster secret or a client key is missing, unreadable or malformed."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A CURVE key pair in Z85 text form (40 bytes each), as libzmq wants it."""

    public: bytes
    secret: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        """The key pair whose secret key is the 32-byte ``seed``."""
        if len(seed) != 32:
            raise ValueError("a CURVE seed must be 32 bytes")
        secret_z85 = z85.encode(seed)
        return cls(public=zmq.curve_public(secret_z85), secret=secret_z85)

    @classmethod
    def generate(cls) -> KeyPair:
        public, secret = zmq.curve_keypair()
        return cls(public=public, secret=secret)


@dataclass(frozen=True, slots=True)
class ClusterKeys:
    """The key pairs every member derives from the cluster secret.

    ``server``/``client`` secure inter-host sockets; ``api`` is what the
    scheduler API sockets present (clients learn its public key from their
    key file, written by ``meshd keygen --client``).
    """

    server: KeyPair
    client: KeyPair
    api: KeyPair

    @classmethod
    def from_secret(cls, secret: bytes) -> ClusterKeys:
        """Derive the server and client CURVE pairs from the 32-byte secret."""
        if len(secret) != 32:
            raise SecretError(f"a cluster secret is 32 bytes, got {len(secret)}")
        return cls(server=KeyPair.from_seed(_derive(secret, b"curve-server")),
                   client=KeyPair.from_seed(_derive(secret, b"curve-client")),
                   api=KeyPair.from_seed(_derive(secret, b"curve-api-server")))


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hashlib.blake2b(purpose, key=secret, person=b"meshd-kdf-v1", digest_size=32).digest()


def new_secret() -> bytes:
    """32 bytes from the OS CSPRNG."""
    return secrets.token_bytes(32)


def format_secret(secret: bytes) -> str:
    """The one-line text form written to the secret file."""
    return SECRET_PREFIX + base64.urlsafe_b64encode(secret).decode()


def parse_secret(text: str, source: str = "secret") -> bytes:
    """Parse the text form made by :func:`format_secret`.

    Raises:
      SecretError: naming ``source`` and how to make a valid secret.
    """
    text = text.strip()
    if not text.startswith(SECRET_PREFIX):
        raise SecretError(
            f"{source} is not a meshd cluster secret (it must start with {SECRET_PREFIX!r}); "
            f"make one with `meshd keygen` and copy the same file to every host"
        )
    try:
        raw = base64.urlsafe_b64decode(text[len(SECRET_PREFIX):].encode())
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 32:
        raise SecretError(f"{source} is damaged (expected 32 bytes of key); copy it again from a member")
    return raw


def read_secret(path: str | Path) -> bytes:
    """Read and parse the cluster secret file.

    Raises:
      SecretError: the file is missing, unreadable or malformed.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SecretError(
            f"cluster secret {path} does not exist; create it with `meshd keygen --out {path}` "
            f"on the first host and copy it to the others"
        ) from None
    except PermissionError:
        raise SecretError(f"cluster secret {path} is not readable; run meshd as root") from None
    return parse_secret(text, str(path))


def write_private(path: str | Path, text: str, *, force: bool = False) -> None:
    """Write ``text`` to a new file readable by its owner only (mode 0600).

    Raises:
      FileExistsError: the file exists and ``force`` is false.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    os.chmod(path, 0o600)


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A scheduler client's key file: its own pair and the API server's public key."""

    name: str
    pair: KeyPair
    api_server_public: bytes


def format_client_key(name: str, pair: KeyPair, api_server_public: bytes) -> tuple[str, str]:
    """(``NAME.key`` text for the client, ``NAME.pub`` text for the hosts)."""
    public = f"{CLIENT_KEY_PREFIX} {name} {pair.public.decode()}"
    return f"{public} {pair.secret.decode()} {api_server_public.decode()}", public


def parse_client_key(text: str, source: str) -> ClientKey | tuple[str, bytes]:
    """Parse a ``NAME.key`` (-> :class:`ClientKey`) or ``NAME.pub`` (-> (name, public key)).

    Raises:
      SecretError: the text is not a meshd client key file.
    """
    parts = text.split()
    if not parts or parts[0] != CLIENT_KEY_PREFIX or len(parts) not in (3, 5):
        raise SecretError(f"{source} is not a meshd client key; make one with `meshd keygen --client NAME`")
    if any(len(p) != 40 for p in parts[2:]):
        raise SecretError(f"{source}: keys must be 40 Z85 characters; the file is damaged")
    name, public = parts[1], parts[2].encode()
    if len(parts) == 5:
        return ClientKey(name, KeyPair(public=public, secret=parts[3].encode()), parts[4].encode())
    return name, public


def read_client_key(path: str | Path) -> ClientKey:
    """Read a client's ``NAME.key`` file.

    Raises:
      SecretError: missing, unreadable, or a ``.pub`` file given instead.
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SecretError(f"client key {path} cannot be read ({exc.strerror}); "
                          f"make one with `meshd keygen --client NAME`") from None
    key = parse_client_key(text, str(path))
    if not isinstance(key, ClientKey):
        raise SecretError(f"{path} is a public key file; a client needs its NAME.key file")
    return key


def load_client_keys(directory: str | Path) -> dict[bytes, str]:
    """Public keys allowed on the scheduler API: ``{public_key: client name}``.

    Reads every ``*.pub`` file in ``directory``; a missing directory means no
    clients.  A client's secret key has no business on the hosts: a ``*.key``
    file, or any file holding a secret key, is refused.

    Raises:
      SecretError: a malformed ``.pub`` file, or a secret key file in the
        directory; the message names the file and the fix.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    secret_fix = ("a client's NAME.key must stay with the client: remove it from api.clients_dir on every "
                  "host and copy NAME.pub there instead (`meshd keygen --client NAME` wrote both)")
    for path in sorted(directory.glob("*.key")):
        raise SecretError(f"{path} is a scheduler client's secret key file; {secret_fix}")
    allowed: dict[bytes, str] = {}
    for path in sorted(directory.glob("*.pub")):
        key = parse_client_key(path.read_text(), str(path))
        if isinstance(key, ClientKey):
            raise SecretError(f"{path} holds a scheduler client's secret key; {secret_fix}")
        allowed[key[1]] = key[0]
    return allowed
