#!/usr/bin/env python3
"""Interop client on the Python SDK `mcp` 1.x (streamable HTTP, initialize handshake).

    mcp1_client.py --profile NAME --expect expectations.json URL

Initializes, lists tools, calls the profile's tools and checks their text, then lists and
reads resources and prompts when the profile names them; on exit the transport ends the
session with DELETE. Exits 1 on any mismatch or error.
"""

from __future__ import annotations

import argparse
import sys

from expect import Profile, run, wire
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


async def exercise(url: str, profile: Profile) -> None:
    async with streamablehttp_client(url) as (read, write, get_session_id):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            print(f"[mcp1] initialize: {init.serverInfo.name} {init.serverInfo.version}, "
                  f"protocol {init.protocolVersion}, session id {'set' if get_session_id() else 'none'}")
            profile.check_server_name(init.serverInfo.name)
            tools = profile.check_tools(wire(await session.list_tools()))
            print(f"[mcp1] tools/list: {len(tools)} tools")
            for call in profile.calls:
                result = wire(await session.call_tool(call["tool"], call["arguments"]))
                print(f"[mcp1] tools/call {call['tool']} -> {profile.check_call(call, result)!r}")
            if profile.resource is not None:
                listed = wire(await session.list_resources())
                read_result = wire(await session.read_resource(profile.resource["uri"]))
                profile.check_resources(listed, read_result)
                print(f"[mcp1] resources/list + read {profile.resource['uri']}: ok")
            if profile.prompt is not None:
                listed = wire(await session.list_prompts())
                got = wire(await session.get_prompt(profile.prompt["name"], profile.prompt["arguments"]))
                profile.check_prompts(listed, got)
                print(f"[mcp1] prompts/list + get {profile.prompt['name']}: ok")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--expect", required=True)
    args = parser.parse_args()
    profile = Profile(args.expect, args.profile, "mcp1")
    return run(exercise(args.url, profile))


if __name__ == "__main__":
    sys.exit(main())
