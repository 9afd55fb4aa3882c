"""A YAML loader for configs: PyYAML's safe loader, refusing what no config needs.

- duplicate keys (YAML says a mapping's keys are unique; PyYAML keeps the last silently);
- more than MAX_ALIASES alias uses (a 400-byte "billion laughs" document expands to gigabytes
  in whatever walks it afterwards);
- nesting deeper than MAX_DEPTH (thousands of levels end in a RecursionError).

Both limits are checked while the document is composed, before any Python object is built.
`read_text` and `parse` are how every YAML file lstmcast reads (a config, tune's --space) gets here:
a regular UTF-8 file of at most a megabyte, any problem one `ConfigError` naming the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode

from lstmcast.errors import ConfigError, shown

MAX_ALIASES = 50
MAX_DEPTH = 32


class YamlRefused(Exception):
    """A well-formed document this loader will not build."""

    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


class StrictLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlRefused(
                    f"more than {MAX_ALIASES} YAML aliases (*name); a config needs none", event.start_mark
                )
        nested = isinstance(event, MappingStartEvent | SequenceStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise YamlRefused(f"YAML nested more than {MAX_DEPTH} levels deep", event.start_mark)
        try:
            return Composer.compose_node(self, parent, index)
        finally:
            if nested:
                self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, str | int | float | bool) or key is None:
                    if key in seen:
                        first = seen[key]
                        raise YamlRefused(
                            f"duplicate key {str(key)[:80]!r} (first at line {first.line + 1}); keep one",
                            key_node.start_mark,
                        )
                    seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


MAX_BYTES = 1 << 20  # a config or a search space is a few hundred bytes; a megabyte is surely something else


def read_text(path: Path, what: str) -> str:
    """The text of a YAML file (`what`: "config file", "--space file"): a regular UTF-8 file of at most MAX_BYTES.

    Opened without blocking and checked once open, so a FIFO swapped in cannot hang the run.
    """
    import errno
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise ConfigError(f"{what} {path} not found — check the path") from None
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{what} {path} is a symbolic link that loops — give the YAML file itself") from None
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc} — check its permissions") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{what} path {path} is a folder — give the YAML file inside it")
        raise ConfigError(f"{what} path {path} is not a regular file (a FIFO or device?) — give the YAML file")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc} — check the file") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{what} {path} is over {MAX_BYTES >> 20} MiB — is this a YAML file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path}: cannot read YAML (not UTF-8 text) — is this the right file?") from None


def parse(text: str, source: str) -> Any:
    """YAML through `StrictLoader`: what no config or space needs (duplicate keys, alias bombs, deep nesting,
    absurd numbers) is one ConfigError naming `source` and the line."""
    loader = None
    try:
        loader = StrictLoader(text)  # the reader refuses control characters here already
        return loader.get_single_data()
    except YamlRefused as exc:
        raise ConfigError(f"{source}{exc.where}: {exc} — fix the YAML there") from None
    except yaml.MarkedYAMLError as exc:
        mark, context = exc.problem_mark, exc.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        opened = f" ({exc.context} at line {context.line + 1})" if context and exc.context else ""
        raise ConfigError(f"{source}{where}: YAML syntax error: {exc.problem}{opened} — fix the YAML there") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: e.g. an integer of 5,000 digits
        raise ConfigError(f"{source}: cannot read YAML ({shown(str(exc))}) — is this a config file?") from None
    finally:
        if loader is not None:
            loader.dispose()
