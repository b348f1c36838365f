"""Checks shared by the Python interop clients (mcp 1.x and 2.x).

Both SDKs return pydantic models whose attribute names differ between major versions
(`isError` vs `is_error`), so every result is first dumped to its wire form (camelCase JSON,
as the server sent it) and checked there. A check that fails raises `Mismatch`; the client
prints it and exits non-zero.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Coroutine
from typing import Any


class Mismatch(Exception):
    """A server answered, but not what the profile expects."""


def run(main: Coroutine[Any, Any, None]) -> int:
    """Runs a client; a mismatch prints one line and gives exit code 1, anything else raises.

    The SDKs run their transports in anyio task groups, which wrap an exception raised inside
    a session in (possibly nested) exception groups.
    """
    try:
        asyncio.run(main)
    except Exception as error:  # noqa: BLE001 - re-raised below unless it is a mismatch
        mismatch = _find_mismatch(error)
        if mismatch is None:
            raise
        print(f"MISMATCH: {mismatch}", file=sys.stderr)
        return 1
    return 0


def _find_mismatch(error: BaseException) -> Mismatch | None:
    if isinstance(error, Mismatch):
        return error
    for inner in getattr(error, "exceptions", ()):
        found = _find_mismatch(inner)
        if found is not None:
            return found
    return None


def wire(model: Any) -> dict[str, Any]:
    """The JSON-RPC wire form of an SDK result model."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class Profile:
    """The expectations of one target (see expectations.json), with `$MSG` filled in."""

    def __init__(self, path: str, name: str, client: str) -> None:
        with open(path, encoding="utf-8") as file:
            profiles = json.load(file)
        if name not in profiles or name.startswith("_"):
            raise SystemExit(f"unknown profile {name!r} in {path}")
        self.name = name
        # Unique per run: an answer routed to the wrong caller carries another message.
        self.message = f"interop {client} {uuid.uuid4().hex[:12]}"
        self.spec: dict[str, Any] = self._fill(profiles[name])

    def _fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("$MSG", self.message)
        if isinstance(value, list):
            return [self._fill(item) for item in value]
        if isinstance(value, dict):
            return {key: self._fill(item) for key, item in value.items()}
        return value

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self.spec.get("calls", [])

    @property
    def resource(self) -> dict[str, Any] | None:
        return self.spec.get("resource")

    @property
    def prompt(self) -> dict[str, Any] | None:
        return self.spec.get("prompt")

    def check_server_name(self, name: str | None) -> None:
        expected = self.spec.get("server_name")
        if expected is not None and name != expected:
            raise Mismatch(f"serverInfo.name is {name!r}, expected {expected!r}")

    def check_tools(self, result: dict[str, Any]) -> list[str]:
        names = [tool["name"] for tool in result.get("tools", [])]
        missing = [name for name in self.spec.get("tools", []) if name not in names]
        if missing:
            raise Mismatch(f"tools/list lacks {missing}; it lists {names}")
        return names

    def check_call(self, call: dict[str, Any], result: dict[str, Any]) -> str:
        if result.get("isError"):
            raise Mismatch(f"tools/call {call['tool']} failed: {result}")
        texts = [block.get("text") for block in result.get("content", []) if block.get("type") == "text"]
        if texts != [call["text"]]:
            raise Mismatch(f"tools/call {call['tool']} returned {texts!r}, expected [{call['text']!r}]")
        return texts[0]

    def check_resources(self, listed: dict[str, Any], read: dict[str, Any]) -> None:
        spec = self.resource
        assert spec is not None
        uris = [resource["uri"] for resource in listed.get("resources", [])]
        if spec["uri"] not in uris:
            raise Mismatch(f"resources/list lacks {spec['uri']}; it lists {uris}")
        contents = read.get("contents", [])
        if len(contents) != 1 or contents[0].get("uri") != spec["uri"]:
            raise Mismatch(f"resources/read {spec['uri']} returned {contents!r}")
        text = contents[0].get("text", "")
        if "text" in spec and text != spec["text"]:
            raise Mismatch(f"resources/read {spec['uri']} text is {text!r}, expected {spec['text']!r}")
        if "contains" in spec and spec["contains"] not in text:
            raise Mismatch(f"resources/read {spec['uri']} text lacks {spec['contains']!r}")

    def check_prompts(self, listed: dict[str, Any], got: dict[str, Any]) -> None:
        spec = self.prompt
        assert spec is not None
        names = [prompt["name"] for prompt in listed.get("prompts", [])]
        if spec["name"] not in names:
            raise Mismatch(f"prompts/list lacks {spec['name']}; it lists {names}")
        texts = [
            message["content"].get("text")
            for message in got.get("messages", [])
            if message.get("content", {}).get("type") == "text"
        ]
        if texts != [spec["text"]]:
            raise Mismatch(f"prompts/get {spec['name']} returned {texts!r}, expected [{spec['text']!r}]")
