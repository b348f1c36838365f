// Interop client on the TypeScript SDK (@modelcontextprotocol/sdk): Client +
// StreamableHTTPClientTransport.
//
//   node ts_client.mjs --profile NAME --expect expectations.json URL
//
// connect (initialize + notifications/initialized), listTools, callTool with the profile's
// checks, resources and prompts when the profile names them, then terminateSession (DELETE)
// and a check that the ended session is refused. Exits 1 on any mismatch or error.
//
// ESM resolves packages from the script's own location, so run.sh copies this file next to
// the node_modules it installed.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const { values, positionals } = parseArgs({
  options: { profile: { type: "string" }, expect: { type: "string" } },
  allowPositionals: true,
});
if (!values.profile || !values.expect || positionals.length !== 1) {
  console.error("usage: ts_client.mjs --profile NAME --expect FILE URL");
  process.exit(2);
}
const url = new URL(positionals[0]);

class Mismatch extends Error {}

// $MSG is unique per run, so an answer meant for another caller cannot pass.
const message = `interop ts ${randomUUID().slice(0, 12)}`;
const profiles = JSON.parse(readFileSync(values.expect, "utf8"));
const spec = JSON.parse(JSON.stringify(profiles[values.profile] ?? null).replaceAll("$MSG", message));
if (spec === null) {
  console.error(`unknown profile ${values.profile}`);
  process.exit(2);
}

const texts = (blocks) => blocks.filter((b) => b.type === "text").map((b) => b.text);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function run() {
  const client = new Client({ name: "conduit-interop-ts", version: "0.0.0" });
  const transport = new StreamableHTTPClientTransport(url);
  await client.connect(transport);
  const server = client.getServerVersion();
  console.log(`[ts] initialize: ${server?.name} ${server?.version}, protocol ${transport.protocolVersion}`);
  if (spec.server_name !== undefined && server?.name !== spec.server_name) {
    throw new Mismatch(`serverInfo.name is ${server?.name}, expected ${spec.server_name}`);
  }

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  const missing = (spec.tools ?? []).filter((n) => !names.includes(n));
  if (missing.length > 0) throw new Mismatch(`tools/list lacks ${missing}; it lists ${names}`);
  console.log(`[ts] tools/list: ${names.length} tools`);

  for (const call of spec.calls ?? []) {
    const result = await client.callTool({ name: call.tool, arguments: call.arguments });
    const got = texts(result.content ?? []);
    if (result.isError || !same(got, [call.text])) {
      throw new Mismatch(`tools/call ${call.tool} returned ${JSON.stringify(result)}, expected [${call.text}]`);
    }
    console.log(`[ts] tools/call ${call.tool} -> ${JSON.stringify(got[0])}`);
  }

  if (spec.resource) {
    const { resources } = await client.listResources();
    if (!resources.some((r) => r.uri === spec.resource.uri)) {
      throw new Mismatch(`resources/list lacks ${spec.resource.uri}`);
    }
    const { contents } = await client.readResource({ uri: spec.resource.uri });
    const text = contents.length === 1 && contents[0].uri === spec.resource.uri ? contents[0].text : undefined;
    if (text === undefined) throw new Mismatch(`resources/read returned ${JSON.stringify(contents)}`);
    if (spec.resource.text !== undefined && text !== spec.resource.text) {
      throw new Mismatch(`resources/read text is ${JSON.stringify(text)}, expected ${spec.resource.text}`);
    }
    if (spec.resource.contains !== undefined && !text.includes(spec.resource.contains)) {
      throw new Mismatch(`resources/read text lacks ${spec.resource.contains}`);
    }
    console.log(`[ts] resources/list + read ${spec.resource.uri}: ok`);
  }

  if (spec.prompt) {
    const { prompts } = await client.listPrompts();
    if (!prompts.some((p) => p.name === spec.prompt.name)) throw new Mismatch(`prompts/list lacks ${spec.prompt.name}`);
    const got = await client.getPrompt({ name: spec.prompt.name, arguments: spec.prompt.arguments });
    const said = got.messages.filter((m) => m.content.type === "text").map((m) => m.content.text);
    if (!same(said, [spec.prompt.text])) throw new Mismatch(`prompts/get returned ${JSON.stringify(said)}`);
    console.log(`[ts] prompts/list + get ${spec.prompt.name}: ok`);
  }

  const sessionId = transport.sessionId;
  if (sessionId) {
    await transport.terminateSession(); // DELETE with the session id
    if (transport.sessionId !== undefined) throw new Mismatch("terminateSession left a session id behind");
    // The spec has a server answer 404 to an ended session; anything but 4xx means the DELETE
    // did not reach it.
    const after = await fetch(url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
        "Mcp-Session-Id": sessionId,
        "Mcp-Protocol-Version": transport.protocolVersion ?? "2025-11-25",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 99, method: "tools/list", params: {} }),
    });
    await after.body?.cancel();
    if (after.status < 400 || after.status >= 500) {
      throw new Mismatch(`the ended session still answers: HTTP ${after.status}`);
    }
    console.log(`[ts] DELETE ended the session (a later request gets HTTP ${after.status})`);
  } else {
    console.log("[ts] stateless server: no session to terminate");
  }
  await client.close();
}

try {
  await run();
} catch (err) {
  console.error(err instanceof Mismatch ? `MISMATCH: ${err.message}` : err);
  process.exit(1);
}
