//go:build js && wasm

package main

import (
	"bytes"
	"fmt"
	"syscall/js"

	"github.com/qflare/qflare/shared/data"
)

// maxOwnFile caps one file of the person's own data as the page hands it
// over (compressed IDX files are checked again after decompression by
// data.LoadIDX).
const maxOwnFile = 256 << 20

// ownShape is the sample shape the run's model expects, as the page read it
// from the run's configuration.
type ownShape struct {
	Dataset    string
	H, W, C    int
	Classes    int
	maxSamples int
}

// ownSet builds a data.Set from the person's own data, which never leaves
// the tab: either two IDX files (images and labels, raw or gzip; told apart
// by size, the labels being the smaller) or pixels the page decoded from
// image files (uint8, HWC, already in the run's shape) with their labels.
// The set is named after the run's dataset, so that Fill standardises it as
// the server's data.
func ownSet(o js.Value, want ownShape) (*data.Set, error) {
	var set *data.Set
	switch kind := o.Get("kind").String(); kind {
	case "idx":
		a, err := bytesFromJS(o.Get("files").Index(0), maxOwnFile)
		if err != nil {
			return nil, err
		}
		b, err := bytesFromJS(o.Get("files").Index(1), maxOwnFile)
		if err != nil {
			return nil, err
		}
		if len(a) < len(b) {
			a, b = b, a
		}
		if set, err = data.LoadIDX(want.Dataset, bytes.NewReader(a), bytes.NewReader(b), want.Classes); err != nil {
			return nil, fmt.Errorf("wasmclient: your IDX files: %w", err)
		}
	case "pixels":
		d := want.H * want.W * want.C
		n := o.Get("labels").Get("byteLength").Int()
		if n < 1 || n > want.maxSamples || d < 1 || d > data.MaxDim {
			return nil, fmt.Errorf("wasmclient: %d images of shape %dx%dx%d is not something this client can train on (1 to %d images)", n, want.H, want.W, want.C, want.maxSamples)
		}
		images, err := bytesFromJS(o.Get("images"), n*d)
		if err != nil {
			return nil, err
		}
		labels, err := bytesFromJS(o.Get("labels"), n)
		if err != nil {
			return nil, err
		}
		set = &data.Set{Name: want.Dataset, H: want.H, W: want.W, C: want.C, Classes: want.Classes, Images: images, Labels: labels}
	default:
		return nil, fmt.Errorf("wasmclient: unknown kind of own data %q", kind)
	}
	if err := set.Validate(); err != nil {
		return nil, fmt.Errorf("wasmclient: your data: %w", err)
	}
	if set.H != want.H || set.W != want.W || set.C != want.C || set.Classes != want.Classes {
		return nil, fmt.Errorf("wasmclient: your data holds %dx%dx%d images in %d classes, but this run's model (%s) needs %dx%dx%d in %d classes",
			set.H, set.W, set.C, set.Classes, want.Dataset, want.H, want.W, want.C, want.Classes)
	}
	if set.Len() > want.maxSamples {
		return nil, fmt.Errorf("wasmclient: your data holds %d samples; this client takes at most %d", set.Len(), want.maxSamples)
	}
	return set, nil
}
