"""Where data lives: a file path or a database URL (`scheme://…`), told apart without importing anything;
and the one rule for secrets in locations: never shown, never stored.

A base module so that the config can resolve path knobs (and leave URLs as written) without
reaching into the data package, and so that every layer — error lines, log lines, `--json`,
files — masks secrets the same way (`redact`, `redact_tree`) and refuses the same secrets in
clear (`refuse_secrets`). `data.db` owns everything else about URLs.

A secret is a URL's password (`postgresql://user:secret@host/db`), the value of any key whose
name holds `pass`, `pwd`, `secret`, `token`, `credential` or `apikey` (`?password=…`,
`?sslpassword=…`, `?passfile=…`, `api_key=…`), in a URL's query or in a libpq connection string
(`host=db password=secret`). Masked, it reads `***`. In a config or a flag, only `${VAR}` (read
from the environment when connecting) may stand in a secret's place.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from lstmcast.errors import ConfigError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_VAR = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
# user info: everything between `scheme://user:` and the last `@` of that word (an unencoded @ in a password too)
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#]*:)(\S*)@")
_SECRET_WORD = r"(?:pass|pwd|secret|token|credential|api_?key)"
_SECRET_KEY = rf"[A-Za-z0-9_.\-]*{_SECRET_WORD}[A-Za-z0-9_.\-]*"
# key=value in a URL's query or a libpq connection string; a value may be quoted as libpq allows
_ASSIGN = re.compile(rf"(?<![A-Za-z0-9_.\-])({_SECRET_KEY})(\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&#;]*)", flags=re.IGNORECASE)
_DSN = re.compile(r"^\s*[A-Za-z_]+\s*=")  # `host=db dbname=load …`: a libpq connection string, not a path
MASK = "***"


def is_url(text: object) -> bool:
    """A database URL (`scheme://…`) rather than a file path."""
    return isinstance(text, str) and bool(_SCHEME.match(text))


def is_secret_key(name: str) -> bool:
    """A URL query key or libpq keyword whose value is a secret (password, sslpassword, passfile, api_key…)."""
    return bool(re.fullmatch(_SECRET_KEY, name, flags=re.IGNORECASE))


def redact(text: str) -> str:
    """`text` with every secret it holds as ***: URL passwords, secret-like query keys, libpq `password=…`."""
    if "=" not in text and "://" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _ASSIGN.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def redact_tree(value: Any) -> Any:
    """Every string in a tree of dicts, lists and tuples (a --json summary, a record) redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(item) for item in value]
    return value


def _in_clear(value: str) -> bool:
    inner = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value
    return bool(inner) and not _VAR.fullmatch(inner)


def secret_in_clear(text: str) -> str | None:
    """What secret `text` holds in clear (not as ${VAR}), in words; None when it holds none."""
    if is_url(text):
        userinfo = _USERINFO.match(text)
        if userinfo and _in_clear(userinfo.group(2)):
            return "a password"
    for match in _ASSIGN.finditer(text):
        if _in_clear(match.group(3)):
            return f"{match.group(1)}=…"
    return None


def refuse_secrets(text: str | None, role: str) -> None:
    """A location holding a secret in clear is refused: it would be copied into config.yaml, the checkpoint and logs."""
    if not isinstance(text, str):
        return
    found = secret_in_clear(text)
    if found is None:
        return
    if not is_url(text) and _DSN.match(text):
        raise ConfigError(
            f"{role} {redact(text)} is a libpq connection string holding {found} in clear — give a URL "
            "(postgresql://user@host:port/database) and keep the password in ~/.pgpass, PGPASSWORD or a ${VAR}"
        )
    if found == "a password":
        raise ConfigError(
            f"{role} {redact(text)} holds a password in clear, which would be copied into config.yaml, the "
            "checkpoint and logs — write ${PGPASSWORD} in its place (read from the environment when connecting) "
            "or leave it out and use ~/.pgpass or PGPASSWORD"
        )
    raise ConfigError(
        f"{role} {redact(text)} holds {found} in clear, which would be copied into config.yaml, the checkpoint "
        "and logs — give its value as ${VAR} (read from the environment when connecting), or leave it out and "
        "use ~/.pgpass or PGPASSWORD"
    )


def absolute(path: str | Path) -> Path:
    """`path` made absolute, symbolic links resolved where they resolve (a link that loops is left for the
    reader to name: `Path.resolve` would raise instead)."""
    path = Path(path).expanduser()
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return Path(os.path.abspath(path))
