// QFLARE training worker. The page posts a boot message first:
//   {type: 'boot', role: 'lead' | 'helper', module: WebAssembly.Module, ...}
// and this script runs the Go program (client.wasm) with it: the lead joins
// the run over its own WebSocket and trains, helpers train shards for the
// lead over a MessagePort. Messages that arrive before the program is ready
// wait in self.qflareQueue; the program takes them through
// self.qflareDeliver. See wasmclient/main_js.go.
'use strict';

importScripts('wasm_exec.js');

// The Go runtime prints panics and diagnostics with console.log and
// console.error inside the worker; the page repeats them in its own console,
// where people (and tests) look.
for (const level of ['log', 'warn', 'error']) {
  const orig = console[level].bind(console);
  console[level] = (...args) => {
    orig(...args);
    try {
      self.postMessage({ type: 'log', level, text: args.map(String).join(' ') });
    } catch (e) { /* not clonable: the worker's own console has it */ }
  };
}

self.qflareQueue = [];
self.qflareBoot = null;

self.onmessage = (e) => {
  const m = e.data;
  if (m && m.type === 'boot' && !self.qflareBoot) {
    self.qflareBoot = m;
    start(m).catch((err) => {
      self.postMessage({ type: 'stopped', reason: 'the training program failed to start: ' + err, error: true });
    });
    return;
  }
  if (self.qflareDeliver) self.qflareDeliver(m);
  else self.qflareQueue.push(m);
};

async function start(boot) {
  const go = new Go();
  go.argv = ['qflare-' + boot.role];
  let instance;
  if (boot.module instanceof WebAssembly.Module) {
    instance = await WebAssembly.instantiate(boot.module, go.importObject);
  } else {
    const res = await WebAssembly.instantiateStreaming(fetch('client.wasm'), go.importObject);
    instance = res.instance;
  }
  await go.run(instance);
  self.postMessage({ type: 'exited', role: boot.role });
}
