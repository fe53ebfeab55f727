package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// root is the repository root (the tests run in server/internal/deploy).
var root = filepath.Join("..", "..", "..")

func read(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// containerfile is what build/Containerfile says about the image.
type containerfile struct {
	From       string
	User       string            // "uid:gid"
	Volumes    []string          // VOLUME paths
	Expose     []string          // EXPOSE ports, "8080"
	Env        map[string]string // ENV
	Entrypoint []string
	Workdir    string
}

// parseContainerfile reads the instructions build/Containerfile uses:
// FROM, COPY, USER, WORKDIR, VOLUME (JSON form), EXPOSE, ENV (KEY=VALUE
// pairs, continued lines), STOPSIGNAL, ENTRYPOINT (JSON form). Anything
// else is an error, so the test notices new instructions.
func parseContainerfile(t *testing.T) containerfile {
	t.Helper()
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(read(t, "build/Containerfile")))
	cur := ""
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if cur == "" && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if cont, ok := strings.CutSuffix(l, `\`); ok {
			cur += cont + " "
			continue
		}
		lines = append(lines, cur+l)
		cur = ""
	}
	cf := containerfile{Env: map[string]string{}}
	jsonList := regexp.MustCompile(`"([^"]*)"`)
	list := func(s string) []string {
		var out []string
		for _, m := range jsonList.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1])
		}
		return out
	}
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			cf.From = rest
		case "COPY", "STOPSIGNAL":
		case "USER":
			cf.User = rest
		case "WORKDIR":
			cf.Workdir = rest
		case "VOLUME":
			cf.Volumes = append(cf.Volumes, list(rest)...)
		case "EXPOSE":
			cf.Expose = append(cf.Expose, strings.Fields(rest)...)
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Containerfile: ENV %q is not KEY=VALUE", kv)
				}
				cf.Env[k] = v
			}
		case "ENTRYPOINT":
			cf.Entrypoint = list(rest)
		default:
			t.Fatalf("Containerfile: instruction %q is not one the test knows; teach parseContainerfile", instr)
		}
	}
	return cf
}

// serveVariables returns the environment variables `qflare serve --help`
// lists, from a freshly built server binary.
func serveVariables(t *testing.T) map[string]bool {
	t.Helper()
	bin := buildServer(t)
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("serve --help: %v\n%s", err, out)
	}
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile(`\(\$(QFLARE_[A-Z_]+)\)`).FindAllStringSubmatch(string(out), -1) {
		vars[m[1]] = true
	}
	if len(vars) < 5 {
		t.Fatalf("serve --help lists only %v:\n%s", vars, out)
	}
	return vars
}

var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// buildServer builds the server binary once for the package's tests.
func buildServer(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "qflare-deploy-test-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "qflare")
		cmd := exec.Command("go", "build", "-o", built.bin, "./server")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build ./server: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}
