// Preloaded into server-everything (`node --require loopback.cjs ...`). Its streamable HTTP
// transport calls `listen(PORT)` with no host, which binds every interface; the interop suite
// must only listen on loopback, so a listen() given a port but no host gets 127.0.0.1.
"use strict";
const net = require("node:net");

const listen = net.Server.prototype.listen;
const isPort = (value) => typeof value === "number" || (typeof value === "string" && /^\d+$/.test(value));

net.Server.prototype.listen = function (...args) {
  if (isPort(args[0]) && typeof args[1] !== "string") {
    args.splice(1, 0, "127.0.0.1");
  } else if (args[0] !== null && typeof args[0] === "object" && "port" in args[0] && !args[0].host) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};
