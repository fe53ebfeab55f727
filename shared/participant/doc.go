// Package participant is a federated-learning client's logic: join a run,
// fetch its data slice, receive the global model, train locally, upload an
// encoded update, and wait for the next round. It is written against
// link.Conn, so the browser tab (WebSocket through syscall/js), the headless
// client (gorilla/websocket) and the simulator (link.Pipe) run this same code.
//
// # Sessions
//
// Client.Session runs one connection from hello to close. A Client outlives
// its connections: it keeps its id (so the server does not count it twice),
// its data slice, the model version it holds (so the server can send a
// delta), and the encoder's error-feedback residual. Callers reconnect with
// back-off by calling Session again with a new connection.
//
// # Device emulation
//
// With Options.Profile a client takes as long as that device would to
// download, train and upload, measured and waited on Options.Clock (real
// time, or a simulation's virtual time); pace.go says how.
//
// # Concurrency
//
// A Client is not safe for concurrent use: run one Session at a time. Session
// starts one reader goroutine per connection, which ends before it returns.
package participant
