// Package www holds the pages and scripts the server embeds: the join page
// (where a tab becomes a participant), the dashboard, the Web Worker that
// runs the Go→wasm client, and their vendored libraries. The Makefile puts
// client.wasm and the toolchain's wasm_exec.js into static/ before the
// server is built, so one binary serves everything.
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
// the dashboard at /dashboard, and the files under /static/. A file with a
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
