//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"
	"unsafe"
)

// Conversions between Go values and JavaScript typed arrays, and waiting on
// promises. WebAssembly is little-endian, as are Float32Arrays on every
// engine that runs it, so float32 slices cross as their bytes.

var (
	uint8Array   = js.Global().Get("Uint8Array")
	float32Array = js.Global().Get("Float32Array")
	arrayBuffer  = js.Global().Get("ArrayBuffer")
	jsArray      = js.Global().Get("Array")
	jsObject     = js.Global().Get("Object")
)

// bytesToJS returns a new Uint8Array holding a copy of b.
func bytesToJS(b []byte) js.Value {
	u := uint8Array.New(len(b))
	js.CopyBytesToJS(u, b)
	return u
}

// bytesFromJS copies an ArrayBuffer or a typed-array view into a new slice.
// It refuses more than max bytes before allocating.
func bytesFromJS(v js.Value, max int) ([]byte, error) {
	u, err := uint8View(v)
	if err != nil {
		return nil, err
	}
	n := u.Get("byteLength").Int()
	if n > max {
		return nil, fmt.Errorf("wasmclient: %d bytes exceed the limit of %d", n, max)
	}
	b := make([]byte, n)
	js.CopyBytesToGo(b, u)
	return b, nil
}

// uint8View returns a Uint8Array over an ArrayBuffer or another typed array.
func uint8View(v js.Value) (js.Value, error) {
	switch {
	case v.InstanceOf(uint8Array):
		return v, nil
	case v.InstanceOf(arrayBuffer):
		return uint8Array.New(v), nil
	case v.Type() == js.TypeObject && v.Get("buffer").Truthy() && v.Get("byteLength").Type() == js.TypeNumber:
		return uint8Array.New(v.Get("buffer"), v.Get("byteOffset"), v.Get("byteLength")), nil
	}
	return js.Undefined(), errors.New("wasmclient: expected an ArrayBuffer or a typed array")
}

// float32Bytes views v's memory as bytes (no copy).
func float32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// float32sToJS returns a new ArrayBuffer holding a copy of v, ready to be
// transferred.
func float32sToJS(v []float32) js.Value {
	return bytesToJS(float32Bytes(v)).Get("buffer")
}

// float32sFromJS copies an ArrayBuffer (or view) of exactly len(dst)
// float32 values into dst.
func float32sFromJS(dst []float32, v js.Value) error {
	u, err := uint8View(v)
	if err != nil {
		return err
	}
	if n := u.Get("byteLength").Int(); n != 4*len(dst) {
		return fmt.Errorf("wasmclient: got %d bytes of weights, want %d (%d parameters)", n, 4*len(dst), len(dst))
	}
	js.CopyBytesToGo(float32Bytes(dst), u)
	return nil
}

// await blocks until promise p settles or ctx is done. It must not be called
// from a js.Func callback (the event loop would never run).
func await(ctx context.Context, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	ok := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: arg(args, 0)}
		return nil
	})
	fail := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{err: jsError(arg(args, 0))}
		return nil
	})
	defer ok.Release()
	defer fail.Release()
	p.Call("then", ok, fail)
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return js.Undefined(), ctx.Err()
	}
}

func arg(args []js.Value, i int) js.Value {
	if i < len(args) {
		return args[i]
	}
	return js.Undefined()
}

// jsError turns a rejected promise's reason into an error.
func jsError(v js.Value) error {
	if v.Type() == js.TypeObject && v.Get("message").Type() == js.TypeString {
		return errors.New(v.Get("message").String())
	}
	return fmt.Errorf("%v", v)
}

// try runs f, turning a JavaScript exception (which syscall/js raises as a
// panic of js.Error) into an error.
func try(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = je
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}

// object returns a new plain JavaScript object with the given fields.
func object(fields map[string]any) js.Value {
	o := jsObject.New()
	for k, v := range fields {
		o.Set(k, v)
	}
	return o
}

// postMessage posts msg to the worker's owner (the page), transferring the
// listed buffers.
func postMessage(target, msg js.Value, transfer ...js.Value) {
	list := jsArray.New()
	for _, t := range transfer {
		list.Call("push", t)
	}
	target.Call("postMessage", msg, list)
}
