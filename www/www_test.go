package www

import (
	"net/http/httptest"
	"testing"
	"testing/fstest"
)

func TestHandlerFS(t *testing.T) {
	root := fstest.MapFS{
		"index.html":      {Data: []byte("join page")},
		"dashboard.html":  {Data: []byte("dashboard page")},
		"present.html":    {Data: []byte("presenter page")},
		"client.wasm":     {Data: []byte("\x00asm raw")},
		"client.wasm.gz":  {Data: []byte("gzipped wasm")},
		"vendor/uplot.js": {Data: []byte("uplot")},
	}
	h := HandlerFS(root)
	tests := []struct {
		path, acceptEncoding string
		status               int
		body, contentType    string
		encoding             string
	}{
		{"/", "", 200, "join page", "text/html; charset=utf-8", ""},
		{"/join/run-1?token=t", "", 200, "join page", "text/html; charset=utf-8", ""},
		{"/dashboard", "", 200, "dashboard page", "text/html; charset=utf-8", ""},
		{"/present", "", 200, "presenter page", "text/html; charset=utf-8", ""},
		{"/static/client.wasm", "gzip, deflate", 200, "gzipped wasm", "application/wasm", "gzip"},
		{"/static/client.wasm", "", 200, "\x00asm raw", "application/wasm", ""},
		{"/static/vendor/uplot.js", "gzip", 200, "uplot", "text/javascript; charset=utf-8", ""},
		{"/static/missing.js", "", 404, "", "", ""},
		{"/other", "", 404, "", "", ""},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", tt.path, nil)
		if tt.acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", tt.acceptEncoding)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.status {
			t.Errorf("GET %s = %d; want %d", tt.path, rec.Code, tt.status)
			continue
		}
		if tt.status != 200 {
			continue
		}
		if got := rec.Body.String(); got != tt.body {
			t.Errorf("GET %s body = %q; want %q", tt.path, got, tt.body)
		}
		if got := rec.Header().Get("Content-Type"); got != tt.contentType {
			t.Errorf("GET %s Content-Type = %q; want %q", tt.path, got, tt.contentType)
		}
		if got := rec.Header().Get("Content-Encoding"); got != tt.encoding {
			t.Errorf("GET %s Content-Encoding = %q; want %q", tt.path, got, tt.encoding)
		}
	}
}
