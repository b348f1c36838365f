#!/usr/bin/env python3
"""Interop client on the Python SDK `mcp` 2.x (streamable HTTP).

    mcp2_client.py --mode session|legacy|auto --profile NAME --expect expectations.json URL

Modes:
  session  the low-level `ClientSession` over `streamable_http_client`, explicit `initialize()`;
  legacy   the high-level `mcp.Client(url, mode="legacy")` (initialize handshake);
  auto     `mcp.Client(url, mode="auto")`: `server/discover` first (protocol 2026-07-28),
           falling back to `initialize` when the server answers with a JSON-RPC error.

Initializes, lists tools, calls the profile's tools and checks their text, then lists and
reads resources and prompts when the profile names them. Exits 1 on any mismatch or error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from expect import Profile, run, wire
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client


async def exercise(session: Any, profile: Profile, tag: str) -> None:
    """The checks common to every mode; `session` is a ClientSession or a Client."""
    tools = profile.check_tools(wire(await session.list_tools()))
    print(f"[{tag}] tools/list: {len(tools)} tools")
    for call in profile.calls:
        text = profile.check_call(call, wire(await session.call_tool(call["tool"], call["arguments"])))
        print(f"[{tag}] tools/call {call['tool']} -> {text!r}")
    if profile.resource is not None:
        listed = wire(await session.list_resources())
        read = wire(await session.read_resource(profile.resource["uri"]))
        profile.check_resources(listed, read)
        print(f"[{tag}] resources/list + read {profile.resource['uri']}: ok")
    if profile.prompt is not None:
        listed = wire(await session.list_prompts())
        got = wire(await session.get_prompt(profile.prompt["name"], profile.prompt["arguments"]))
        profile.check_prompts(listed, got)
        print(f"[{tag}] prompts/list + get {profile.prompt['name']}: ok")


async def low_level(url: str, profile: Profile) -> None:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            print(f"[session] initialize: {init.server_info.name} {init.server_info.version}, "
                  f"protocol {init.protocol_version}")
            profile.check_server_name(init.server_info.name)
            await exercise(session, profile, "session")


async def high_level(url: str, profile: Profile, mode: str) -> None:
    async with Client(url, mode=mode) as client:
        info = client.server_info
        print(f"[{mode}] connected: protocol {client.protocol_version}, "
              f"server {info.name if info else '(not announced)'}")
        # A 2026-07-28 server may leave its identity out of server/discover; a handshake always
        # carries it.
        if info is not None or mode == "legacy":
            profile.check_server_name(info.name if info else None)
        await exercise(client, profile, mode)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--mode", choices=["session", "legacy", "auto"], required=True)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--expect", required=True)
    args = parser.parse_args()
    profile = Profile(args.expect, args.profile, f"mcp2-{args.mode}")
    if args.mode == "session":
        return run(low_level(args.url, profile))
    return run(high_level(args.url, profile, args.mode))


if __name__ == "__main__":
    sys.exit(main())
