// Package www holds the pages and scripts the server embeds, and serves
// them. The Makefile (build/wasm.sh, build/vendor.sh) puts client.wasm, the
// toolchain's wasm_exec.js and gzipped copies of the vendored libraries
// (static/vendor/, committed with their licences) into static/ before the
// server is built, so one binary serves everything.
//
// # Pages
//
//   - static/index.html + join.js, at / (the public run) and /join/{run}:
//     the tab becomes a participant. It starts Web Workers (worker.js) that
//     run client.wasm: one lead worker, which holds the WebSocket and runs
//     the participant, and helper workers (one per extra core, or
//     ?workers=N) that each train a shard of the tab's data for it; the lead
//     averages their weights (see wasmclient). The page only shows what the
//     lead posts and keeps the tab's client id in localStorage. owndata.js
//     reads the person's own files, which never leave the tab.
//
//   - static/dashboard.html + dashboard.js, at /dashboard#admin=TOKEN: a
//     run's live state over the server-sent event feed, charts (uPlot), the
//     client timeline and participation per profile (lanes.js), the join
//     QR code (qrcode-generator), and starting and stopping runs.
//
//   - static/present.html + present.js, at /present: the presenter view for a
//     projector (the public run, or ?run=ID): a big QR code of the join
//     link, the global accuracy beside centralized training's, the devices
//     and their speeds, and a sentence on what is happening.
//
// The pages are plain scripts over ui.js and style.css; window.qflare,
// window.qflareDash and window.qflarePresent expose their state to tests
// (server/internal/e2e drives them in headless Chromium).
package www

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Static is the embedded static folder.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("www: " + err.Error())
	}
	return sub
}

func init() {
	mime.AddExtensionType(".wasm", "application/wasm")
	mime.AddExtensionType(".js", "text/javascript; charset=utf-8")
	mime.AddExtensionType(".mjs", "text/javascript; charset=utf-8")
}

// Handler serves the embedded pages: the join page at / and /join/{run},
// the dashboard at /dashboard, the presenter view at /present, and the
// files under /static/. A file with a
// precompressed ".gz" sibling is sent compressed to clients that accept
// gzip.
func Handler() http.Handler { return HandlerFS(Static()) }

// HandlerFS is Handler over another static folder (tests serve the files on
// disk, with a freshly built client.wasm).
func HandlerFS(root fs.FS) http.Handler {
	files := http.FileServerFS(root)
	mux := http.NewServeMux()
	page := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, root, name)
		}
	}
	mux.HandleFunc("GET /{$}", page("index.html"))
	mux.HandleFunc("GET /join/{run}", page("index.html"))
	mux.HandleFunc("GET /dashboard", page("dashboard.html"))
	mux.HandleFunc("GET /present", page("present.html"))
	mux.Handle("GET /static/", http.StripPrefix("/static/", gzipped(root, files)))
	return mux
}

// gzipped serves name.gz with Content-Encoding gzip when it exists and the
// client accepts it.
func gzipped(root fs.FS, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		w.Header().Set("Cache-Control", "no-cache")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			if f, err := fs.Stat(root, name+".gz"); err == nil && !f.IsDir() {
				if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
					w.Header().Set("Content-Type", ct)
				}
				w.Header().Set("Content-Encoding", "gzip")
				w.Header().Add("Vary", "Accept-Encoding")
				r2 := r.Clone(r.Context())
				r2.URL.Path = "/" + name + ".gz"
				http.ServeFileFS(w, r2, root, name+".gz")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
