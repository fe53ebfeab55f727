//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/url"
	"slices"
	"syscall/js"
	"time"

	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/wire"
)

// qds1Fixed is the size of a QDS1 header without its name.
const qds1Fixed = 4 + 2 + 5*4

// progressEvery throttles progress messages to the page.
const progressEvery = 100 * time.Millisecond

// sliceURL is the absolute URL of the welcome's data slice, with the join
// token added.
func sliceURL(base, token string, w *wire.Welcome) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("wasmclient: page origin %q: %w", base, err)
	}
	rel, err := url.Parse(w.Slice.URL)
	if err != nil || w.Slice.URL == "" {
		return "", fmt.Errorf("wasmclient: the server sent a bad slice URL %q", w.Slice.URL)
	}
	u := b.ResolveReference(rel)
	if u.Scheme != b.Scheme || u.Host != b.Host {
		return "", fmt.Errorf("wasmclient: slice URL %q is not on this server", w.Slice.URL)
	}
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// sliceLimit is the largest QDS1 stream a slice of n samples can be.
func sliceLimit(n int) int { return qds1Fixed + data.MaxNameLen + n*(data.MaxDim+1) }

// qds1Size returns the exact stream size a QDS1 header announces, or 0 when
// head holds too little of the header to tell.
func qds1Size(head []byte) int {
	if len(head) < 6 || string(head[:4]) != "QDS1" {
		return 0
	}
	name := int(binary.LittleEndian.Uint16(head[4:]))
	if len(head) < qds1Fixed+name {
		return 0
	}
	f := head[6+name:]
	h, w, c := binary.LittleEndian.Uint32(f), binary.LittleEndian.Uint32(f[4:]), binary.LittleEndian.Uint32(f[8:])
	n := uint64(binary.LittleEndian.Uint32(f[16:]))
	size := uint64(qds1Fixed+name) + n*uint64(h)*uint64(w)*uint64(c) + n
	if size > 1<<40 {
		return 0
	}
	return int(size)
}

// fetchSlice downloads the welcome's data slice with the browser's fetch,
// telling progress(done, total) as it comes (total from the QDS1 header,
// since a gzip-encoded response's Content-Length counts compressed bytes).
func fetchSlice(ctx context.Context, u string, w *wire.Welcome, progress func(done, total int)) (*data.Set, error) {
	ctrl := js.Global().Get("AbortController").New()
	stop := context.AfterFunc(ctx, func() { ctrl.Call("abort") })
	defer stop()
	opts := object(map[string]any{"signal": ctrl.Get("signal"), "cache": "no-store", "credentials": "same-origin"})
	res, err := await(ctx, js.Global().Call("fetch", u, opts))
	if err != nil {
		return nil, fmt.Errorf("wasmclient: downloading the data slice: %w", err)
	}
	if !res.Get("ok").Bool() {
		return nil, fmt.Errorf("wasmclient: downloading the data slice: HTTP %d %s", res.Get("status").Int(), res.Get("statusText").String())
	}
	limit := sliceLimit(max(1, w.Slice.Samples))
	buf, err := readBody(ctx, res.Get("body").Call("getReader"), limit, progress)
	if err != nil {
		return nil, fmt.Errorf("wasmclient: downloading the data slice: %w", err)
	}
	set, err := data.ReadSet(bytes.NewReader(buf), max(1, w.Slice.Samples))
	if err != nil {
		return nil, fmt.Errorf("wasmclient: the data slice: %w", err)
	}
	return set, nil
}

// readBody reads a response body stream, refusing more than limit bytes.
func readBody(ctx context.Context, reader js.Value, limit int, progress func(done, total int)) ([]byte, error) {
	var buf []byte
	total, last := 0, time.Time{}
	for {
		chunk, err := await(ctx, reader.Call("read"))
		if err != nil {
			return nil, err
		}
		if chunk.Get("done").Bool() {
			break
		}
		v := chunk.Get("value")
		n := v.Get("byteLength").Int()
		if len(buf)+n > limit || (total > 0 && len(buf)+n > total) {
			reader.Call("cancel")
			return nil, fmt.Errorf("response is larger than the %d bytes announced", max(total, limit))
		}
		buf = slices.Grow(buf, max(n, total-len(buf)))[:len(buf)+n]
		js.CopyBytesToGo(buf[len(buf)-n:], v)
		if total == 0 {
			total = qds1Size(buf)
		}
		if now := time.Now(); now.Sub(last) >= progressEvery {
			last = now
			progress(len(buf), total)
		}
	}
	progress(len(buf), max(total, len(buf)))
	return buf, nil
}
