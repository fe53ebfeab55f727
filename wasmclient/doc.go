// Command wasmclient is the QFLARE participant. Built with GOOS=js
// GOARCH=wasm it runs inside a browser tab's Web Worker (see www/); built
// natively it is the headless client, which joins a running server like a
// tab does and can stand in for many devices of different speeds:
//
//	go run ./wasmclient --server http://127.0.0.1:8080 --run ID --token T --clients 20 \
//	    [--slowdown 1-8] [--drop 0.1] [--attack sign-flip --attackers 0.2]
//
// Both builds run the same participant logic (package participant); only the
// transport and the entry point differ.
package main
