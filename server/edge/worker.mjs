// The edge Worker's entry. A tab's WebSocket goes to the shard's Durable
// Object (shard.mjs); every other request to the Go handler (edge.wasm, a
// fresh instance per request, as github.com/syumai/workers runs Go), which
// serves the join page and client.wasm from the static assets and passes
// /api/ on to the origin. Hand-written glue: routing only, no logic.
import "./wasm_exec.js";
import mod from "./edge.wasm";
export { Shard } from "./shard.mjs";

// syumai/workers' Go code calls this to turn JS exceptions into errors.
globalThis.tryCatch = (fn) => {
  try {
    return { result: fn() };
  } catch (e) {
    return { error: e };
  }
};

async function goFetch(req, env, ctx) {
  const go = new Go();
  let ready;
  const started = new Promise((resolve) => (ready = resolve));
  const inst = new WebAssembly.Instance(mod, { ...go.importObject, workers: { ready: () => ready() } });
  const binding = {};
  go.run(inst, { env, ctx, binding });
  await started;
  return binding.handleRequest(req);
}

export default {
  async fetch(req, env, ctx) {
    if ((req.headers.get("Upgrade") || "").toLowerCase() === "websocket") {
      const ns = env.SHARD;
      return ns.get(ns.idFromName(env.SHARD_NAME || "shard")).fetch(req);
    }
    return goFetch(req, env, ctx);
  },
};
