//go:build js && wasm

package main

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/syumai/workers/cloudflare"
	"github.com/syumai/workers/cloudflare/fetch"
)

// frontHandler is the Worker's handler for everything but tabs'
// WebSockets (which the glue sends to the Durable Object): the pages and
// client.wasm from the static assets, GET and HEAD /api/ passed on to the
// origin (a tab's data slice, the run, the event stream), and
// /shard/status from the Durable Object.
func frontHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /shard/status", shardStatus)
	mux.HandleFunc("/api/", proxy)
	mux.HandleFunc("/", asset)
	return mux
}

func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"error\": %q}\n", msg)
}

// shardStatus asks the shard's Durable Object for its counters.
func shardStatus(w http.ResponseWriter, r *http.Request) {
	ns, err := cloudflare.NewDurableObjectNamespace("SHARD")
	if err != nil {
		fail(w, http.StatusInternalServerError, "edge: no SHARD Durable Object binding")
		return
	}
	name := cloudflare.Getenv("SHARD_NAME")
	if name == "" {
		name = "shard"
	}
	stub, err := ns.Get(ns.IdFromName(name))
	if err == nil {
		var res *http.Response
		req, _ := http.NewRequestWithContext(r.Context(), "GET", "https://shard/status", nil)
		if res, err = stub.Fetch(req); err == nil {
			copyResponse(w, res)
			return
		}
	}
	fail(w, http.StatusBadGateway, "edge: the shard does not answer: "+err.Error())
}

// Request headers passed on to the origin: what tabs and the pages need.
var forwarded = []string{"Accept", "Last-Event-ID", "If-None-Match", "Range"}

// Response headers passed back. Not Content-Encoding or Content-Length:
// the runtime's fetch has decoded the body.
var returned = []string{"Content-Type", "Cache-Control", "Link", "Retry-After", "ETag", "X-Accel-Buffering"}

// proxy passes a GET or HEAD of /api/ on to the origin, streaming the
// answer back (an event stream stays open).
func proxy(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		fail(w, http.StatusMethodNotAllowed, "the edge shard passes only GET and HEAD of /api/ on to the server; send other requests to the server itself")
		return
	}
	origin := strings.TrimRight(cloudflare.Getenv("ORIGIN_URL"), "/")
	if origin == "" {
		fail(w, http.StatusInternalServerError, "edge: ORIGIN_URL is not set")
		return
	}
	u := origin + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	req, err := fetch.NewRequest(r.Context(), r.Method, u, nil)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	for _, k := range forwarded {
		if v := r.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	res, err := fetch.NewClient().Do(req, nil)
	if err != nil {
		fail(w, http.StatusBadGateway, "edge: the server does not answer: "+err.Error())
		return
	}
	copyResponse(w, res)
}

// copyResponse writes res to w, its body passed through as a stream.
func copyResponse(w http.ResponseWriter, res *http.Response) {
	defer res.Body.Close()
	for _, k := range returned {
		if vs := res.Header.Values(k); len(vs) > 0 {
			w.Header().Set(k, strings.Join(vs, ","))
		}
	}
	w.WriteHeader(res.StatusCode)
	io.Copy(w, res.Body)
}

// Content types by extension: the disk service workerd serves assets
// with sets none.
var types = map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
	".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".wasm": "application/wasm",
	".png": "image/png", ".svg": "image/svg+xml", ".json": "application/json"}

// asset serves a page or a file of the static assets: the join page at /
// and /join/RUN, the dashboard and presenter view, and /static/FILE.
func asset(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		fail(w, http.StatusMethodNotAllowed, "pages and files are read with GET")
		return
	}
	p := r.URL.Path
	var name string
	switch {
	case p == "/" || strings.HasPrefix(p, "/join/") && strings.Count(p, "/") == 2:
		name = "/index.html"
	case p == "/dashboard" || p == "/present":
		name = p + ".html"
	case strings.HasPrefix(p, "/static/") && path.Clean(p) == p:
		name = strings.TrimPrefix(p, "/static")
	default:
		fail(w, http.StatusNotFound, "no page "+p)
		return
	}
	req, err := fetch.NewRequest(r.Context(), "GET", "https://assets"+name, nil)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := fetch.NewClient(fetch.WithBinding(cloudflare.GetBinding("ASSETS"))).Do(req, nil)
	if err != nil {
		fail(w, http.StatusBadGateway, "edge: the static assets do not answer: "+err.Error())
		return
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fail(w, http.StatusNotFound, "no file "+p)
		return
	}
	t := types[path.Ext(name)]
	if t == "" {
		t = mime.TypeByExtension(path.Ext(name))
	}
	if t == "" {
		t = "application/octet-stream"
	}
	w.Header().Set("Content-Type", t)
	w.Header().Set("Cache-Control", "no-cache")
	io.Copy(w, res.Body)
}
