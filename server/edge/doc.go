// Command edge is QFLARE's edge shard: a Cloudflare Worker in Go
// (github.com/syumai/workers, standard Go compiled to js/wasm) that holds
// browser tabs' WebSockets near them, validates and folds their updates,
// and sends the QFLARE server (the origin) one partial aggregate per round
// (server/internal/shard has the logic; README.md, Edge shards, the
// picture).
//
// The bundle (make edge, in bin/edge) is:
//
//	worker.mjs   the Worker's entry (hand-written glue): a tab's WebSocket
//	             goes to the shard's Durable Object, anything else to Go
//	shard.mjs    the Durable Object (hand-written glue): holds the tabs'
//	             and the origin's WebSockets, loads Go once and moves bytes
//	edge.wasm    this command: in the Durable Object, the shard; per
//	             request, the Worker's HTTP handler (static assets, /api/
//	             passed on to the origin, /shard/status)
//	wasm_exec.js github.com/syumai/workers' Go runtime glue
//
// github.com/syumai/workers v0.33.0 can neither define a Durable Object
// class nor accept a WebSocket in Go (a 101 response panics), so both are
// in the JS glue, which only moves bytes; everything else is Go.
//
// Bindings and variables: SHARD (the Durable Object namespace, class
// Shard), ASSETS (the static assets: www/static with client.wasm built),
// SHARD_NAME (the shard's name, [A-Za-z0-9_-]), ORIGIN_URL (the server's
// base URL, http or https), SHARD_TOKEN (serve --shard-token; a secret).
//
// Built for anything but js/wasm, the command only says so.
package main
