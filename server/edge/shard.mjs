// The shard's Durable Object: it holds the tabs' WebSockets and the link
// to the origin and moves their bytes to and from one Go instance
// (edge.wasm, loaded once for the object's lifetime), which holds all the
// logic (server/internal/shard). Sockets are accepted plainly, not with
// the Hibernation API: hibernating wipes the Go instance's memory, and
// with it an open round (measured: after 25 s idle).
import "./wasm_exec.js";
import mod from "./edge.wasm";

export class Shard {
  constructor(state, env) {
    this.state = state;
    this.env = env;
    this.tabs = new Map();
    this.next = 1;
    this.origin = null;
    this.go = this.boot();
  }

  async boot() {
    const go = new Go();
    let ready;
    const started = new Promise((resolve) => (ready = resolve));
    const inst = new WebAssembly.Instance(mod, { ...go.importObject, workers: { ready: () => ready() } });
    const binding = {};
    const io = {
      sendTab: (id, data) => {
        try {
          this.tabs.get(id)?.send(data);
        } catch {}
      },
      closeTab: (id, code, reason) => {
        const ws = this.tabs.get(id);
        this.tabs.delete(id);
        try {
          ws?.close(code, reason);
        } catch {}
      },
      dial: (url, token) => this.dial(url, token, binding),
      sendOrigin: (data) => this.origin.send(data), // throws once the link is gone
      closeOrigin: () => {
        const ws = this.origin;
        this.origin = null;
        try {
          ws?.close(1000, "closing");
        } catch {}
      },
      memory: () => inst.exports.mem.buffer.byteLength,
    };
    go.run(inst, { env: this.env, ctx: this.state, binding, io });
    await started;
    return binding;
  }

  async dial(url, token, binding) {
    const res = await fetch(url, { headers: { Upgrade: "websocket", Authorization: "Bearer " + token } });
    const ws = res.webSocket;
    if (!ws) throw new Error(`the origin answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    ws.accept();
    this.origin = ws;
    ws.addEventListener("message", (e) => {
      binding.originMessage(e.data);
    });
    const down = (e) => {
      if (this.origin !== ws) return;
      this.origin = null;
      binding.originDown(e.reason || e.message || "the link closed");
    };
    ws.addEventListener("close", down);
    ws.addEventListener("error", down);
  }

  async fetch(req) {
    const go = await this.go;
    if ((req.headers.get("Upgrade") || "").toLowerCase() !== "websocket") return go.handleRequest(req);
    await go.linked(); // a fresh object links to the origin first (at most a few seconds)
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    const id = this.next++;
    const refusal = go.tabOpen(id, req.headers.get("CF-Connecting-IP") || "", req.headers.get("Origin") || "", new URL(req.url).host);
    if (refusal) {
      server.close(refusal.code, refusal.reason);
      return new Response(null, { status: 101, webSocket: client });
    }
    this.tabs.set(id, server);
    server.addEventListener("message", (e) => {
      go.tabMessage(id, e.data, typeof e.data === "string" ? e.data.length : e.data.byteLength);
    });
    const gone = () => {
      if (this.tabs.delete(id)) go.tabClosed(id);
    };
    server.addEventListener("close", gone);
    server.addEventListener("error", gone);
    return new Response(null, { status: 101, webSocket: client });
  }
}
