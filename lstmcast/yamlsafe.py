"""A YAML loader for configs: PyYAML's safe loader, refusing what no config needs.

- duplicate keys (YAML says a mapping's keys are unique; PyYAML keeps the last silently);
- more than MAX_ALIASES alias uses (a 400-byte "billion laughs" document expands to gigabytes
  in whatever walks it afterwards);
- nesting deeper than MAX_DEPTH (thousands of levels end in a RecursionError).

Both limits are checked while the document is composed, before any Python object is built.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode

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
