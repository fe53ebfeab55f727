package deploy

import (
	"archive/tar"
	"compress/gzip"
	"crypto/rand"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ociConfig is the part of an OCI image configuration the test reads.
type ociConfig struct {
	Config struct {
		User         string              `json:"User"`
		Env          []string            `json:"Env"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		WorkingDir   string              `json:"WorkingDir"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		Volumes      map[string]struct{} `json:"Volumes"`
		StopSignal   string              `json:"StopSignal"`
		Labels       map[string]string   `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// imageFile is one file of the image's flattened layers.
type imageFile struct {
	hdr  *tar.Header
	data []byte // regular files up to 64 MiB
}

// TestImage builds the image with build/image.sh, reads its configuration
// and layers from an OCI archive, checks them against build/Containerfile,
// runs the server binary taken out of the image, and runs the container
// where containers can run.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a container image")
	}
	tool := ""
	for _, name := range []string{"podman", "buildah"} {
		if _, err := exec.LookPath(name); err == nil {
			tool = name
			break
		}
	}
	if tool == "" {
		t.Skip("neither podman nor buildah is installed (Debian: apt-get install podman): cannot build the image")
	}
	image := "localhost/qflare-test:" + strings.ToLower(rand.Text()[:10])
	cmd := exec.Command("sh", "build/image.sh", image)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build/image.sh: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
	t.Cleanup(func() { exec.Command(tool, "rmi", "-f", image).Run() })

	archive := filepath.Join(t.TempDir(), "image.tar")
	save := exec.Command(tool, "save", "--format", "oci-archive", "-o", archive, image)
	if tool == "buildah" {
		save = exec.Command(tool, "push", image, "oci-archive:"+archive)
	}
	if out, err := save.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", save, err, out)
	}
	cfg, files := readOCIArchive(t, archive)
	cf := parseContainerfile(t)
	checkImageConfig(t, cfg, cf)
	checkImageFiles(t, files, cf)

	// Take the binary and the data it reads out of the image.
	dir := t.TempDir()
	for name, f := range files {
		if name == "qflare" || strings.HasPrefix(name, "usr/share/qflare/") && f.hdr.Typeflag == tar.TypeReg {
			p := filepath.Join(dir, filepath.FromSlash(name))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, f.data, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	runExtracted(t, dir, cfg)
	runContainer(t, tool, image)
}

// readOCIArchive reads an OCI image layout tar: index, manifest,
// configuration, and the layers applied in order (whiteouts honoured).
func readOCIArchive(t *testing.T, archive string) (*ociConfig, map[string]imageFile) {
	t.Helper()
	blobs := map[string][]byte{}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(io.LimitReader(tr, 256<<20))
			if err != nil {
				t.Fatal(err)
			}
			blobs[strings.TrimPrefix(h.Name, "./")] = b
		}
	}
	blob := func(digest string) []byte {
		algo, hex, _ := strings.Cut(digest, ":")
		b, ok := blobs["blobs/"+algo+"/"+hex]
		if !ok {
			t.Fatalf("OCI archive lacks blob %s", digest)
		}
		return b
	}
	type descriptor struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
	}
	var index struct{ Manifests []descriptor }
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v, %d manifests; want 1", err, len(index.Manifests))
	}
	var manifest struct {
		Config descriptor
		Layers []descriptor
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	var cfg ociConfig
	if err := json.Unmarshal(blob(manifest.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(manifest.Layers) != len(cfg.RootFS.DiffIDs) {
		t.Errorf("%d layers for %d diff ids", len(manifest.Layers), len(cfg.RootFS.DiffIDs))
	}
	files := map[string]imageFile{}
	for _, l := range manifest.Layers {
		var r io.Reader = strings.NewReader(string(blob(l.Digest)))
		if strings.HasSuffix(l.MediaType, "+gzip") {
			gz, err := gzip.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			r = gz
		}
		lr := tar.NewReader(r)
		for {
			h, err := lr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			name := strings.TrimSuffix(path.Clean(strings.TrimPrefix(h.Name, "./")), "/")
			if dir, base := path.Split(name); strings.HasPrefix(base, ".wh.") {
				delete(files, path.Join(dir, strings.TrimPrefix(base, ".wh.")))
				continue
			}
			var data []byte
			if h.Typeflag == tar.TypeReg {
				if data, err = io.ReadAll(io.LimitReader(lr, 64<<20)); err != nil {
					t.Fatal(err)
				}
			}
			files[name] = imageFile{hdr: h, data: data}
		}
	}
	return &cfg, files
}

// checkImageConfig compares the image's configuration with the
// Containerfile: the server in a container listens on every interface and
// keeps its database in the volume.
func checkImageConfig(t *testing.T, cfg *ociConfig, cf containerfile) {
	t.Helper()
	c := cfg.Config
	if c.User != cf.User || strings.HasPrefix(c.User, "0") || c.User == "" {
		t.Errorf("image user %q; want the Containerfile's non-root %q", c.User, cf.User)
	}
	if !slices.Equal(c.Entrypoint, cf.Entrypoint) || !slices.Equal(c.Entrypoint, []string{"/qflare", "serve"}) {
		t.Errorf("entrypoint %q; want [/qflare serve]", c.Entrypoint)
	}
	env := map[string]string{}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, v := range cf.Env {
		if env[k] != v {
			t.Errorf("image env %s=%q; want %q", k, env[k], v)
		}
	}
	if host, _, _ := strings.Cut(env["QFLARE_ADDR"], ":"); host != "0.0.0.0" {
		t.Errorf("image QFLARE_ADDR %q; want every interface (0.0.0.0) in a container", env["QFLARE_ADDR"])
	}
	if _, ok := c.Volumes["/data"]; !ok || len(c.Volumes) != 1 || !strings.HasPrefix(env["QFLARE_DB"], "/data/") {
		t.Errorf("image volumes %v, QFLARE_DB %q; want the database in the one volume /data", c.Volumes, env["QFLARE_DB"])
	}
	if _, ok := c.ExposedPorts[cf.Expose[0]+"/tcp"]; !ok {
		t.Errorf("image exposes %v; want %s/tcp", c.ExposedPorts, cf.Expose[0])
	}
	if c.StopSignal != "SIGTERM" || c.Labels["org.opencontainers.image.revision"] == "" {
		t.Errorf("stop signal %q, labels %v; want SIGTERM and the revision label", c.StopSignal, c.Labels)
	}
}

// checkImageFiles checks the layers: a static binary, the user in passwd
// and group, CA certificates that parse, a world-writable sticky /tmp, and
// /data owned by the image's user.
func checkImageFiles(t *testing.T, files map[string]imageFile, cf containerfile) {
	t.Helper()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	t.Logf("image files: %s", strings.Join(names, " "))
	uid, gid, _ := strings.Cut(cf.User, ":")

	bin, ok := files["qflare"]
	if !ok || bin.hdr.Mode&0o111 == 0 {
		t.Fatalf("image has no executable /qflare")
	}
	e, err := elf.NewFile(strings.NewReader(string(bin.data)))
	if err != nil {
		t.Fatalf("/qflare is not an ELF binary: %v", err)
	}
	for _, p := range e.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("/qflare has an ELF interpreter: it is dynamically linked; want a static binary (CGO_ENABLED=0)")
		}
	}
	if libs, _ := e.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("/qflare links %v; want none", libs)
	}
	if bin.hdr.Uid != 0 || bin.hdr.Mode&0o022 != 0 {
		t.Errorf("/qflare owner %d mode %o; want root-owned, not writable by others (the server cannot replace itself)", bin.hdr.Uid, bin.hdr.Mode)
	}

	want := map[string]string{"etc/passwd": fmt.Sprintf(":x:%s:%s:", uid, gid), "etc/group": fmt.Sprintf(":x:%s:", gid)}
	for name, sub := range want {
		if f, ok := files[name]; !ok || !strings.Contains(string(f.data), sub) {
			t.Errorf("/%s lacks an entry with %q", name, sub)
		}
	}
	certs := files["etc/ssl/certs/ca-certificates.crt"].data
	n := 0
	for rest := certs; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if _, err := x509.ParseCertificate(b.Bytes); err == nil {
			n++
		}
	}
	if n < 50 {
		t.Errorf("/etc/ssl/certs/ca-certificates.crt holds %d certificates; want the CA bundle", n)
	}
	if tmp, ok := files["tmp"]; !ok || tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp missing or not mode 1777")
	}
	for _, name := range []string{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"} {
		if len(files[path.Join(strings.TrimPrefix(cf.Env["QFLARE_MNIST_DIR"], "/"), name)].data) == 0 {
			t.Errorf("the image lacks MNIST's %s in $QFLARE_MNIST_DIR %s", name, cf.Env["QFLARE_MNIST_DIR"])
		}
	}
	if d, ok := files["data"]; !ok || d.hdr.Typeflag != tar.TypeDir || fmt.Sprint(d.hdr.Uid) != uid || fmt.Sprint(d.hdr.Gid) != gid {
		t.Errorf("/data missing or not owned by %s:%s", uid, gid)
	}
}

// runExtracted runs the server binary taken out of the image (into the
// folder dir, with the image's other files) with the image's environment
// and nothing else: paths in it are taken into dir, the database goes to a
// temporary folder and the address to a free loopback port. It checks that
// the demo run starts on the image's MNIST files, the probes and metrics,
// and stops the server with SIGTERM.
func runExtracted(t *testing.T, dir string, cfg *ociConfig) {
	t.Helper()
	addr := freeAddr(t)
	env := []string{}
	for _, kv := range cfg.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "QFLARE_ADDR" || k == "QFLARE_DB":
		case k == "QFLARE_MNIST_DIR":
			env = append(env, k+"="+filepath.Join(dir, filepath.FromSlash(v)))
		default:
			env = append(env, kv)
		}
	}
	env = append(env, "QFLARE_ADDR="+addr, "QFLARE_DB="+filepath.Join(t.TempDir(), "qflare.db"), "QFLARE_DEMO=true")
	cmd := exec.Command(filepath.Join(dir, cfg.Config.Entrypoint[0]), cfg.Config.Entrypoint[1:]...)
	cmd.Env = env
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := "http://" + addr
	if !waitStatus(base+"/readyz", http.StatusOK, time.Minute) {
		t.Fatalf("the binary from the image did not become ready:\n%s", logs.String())
	}
	for _, p := range []string{"/healthz", "/metrics", "/api/info", "/present", "/static/vendor/qrcode.js"} {
		if !waitStatus(base+p, http.StatusOK, 5*time.Second) {
			t.Errorf("GET %s from the image's binary is not 200", p)
		}
	}
	var info struct {
		PublicRun *struct{ ID string } `json:"public_run"`
	}
	if resp, err := http.Get(base + "/api/info"); err == nil {
		json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
	}
	if info.PublicRun == nil {
		t.Errorf("the image's binary with QFLARE_DEMO=true has no public demo run")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("the image's binary after SIGTERM: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"shut down"`) {
		t.Errorf("the image's binary did not log JSON lines (QFLARE_LOG_JSON) or a clean shutdown:\n%s", logs.String())
	}
	t.Logf("ran the server binary taken out of the image: ready, probes and metrics answered, SIGTERM exit 0")
}

// runContainer runs the image as a container and checks it becomes ready,
// where the machine can run containers; where it cannot (this project's
// sandbox: crun cannot set rlimits), it says so.
func runContainer(t *testing.T, tool, image string) {
	t.Helper()
	if tool != "podman" {
		t.Logf("not running the container: only %s is installed", tool)
		return
	}
	port := freeAddr(t)[len("127.0.0.1:"):]
	name := "qflare-test-" + strings.ToLower(rand.Text()[:8])
	out, err := exec.Command("podman", "run", "-d", "--name", name, "-p", "127.0.0.1:"+port+":8080", image).CombinedOutput()
	defer exec.Command("podman", "rm", "-f", "-v", name).Run()
	if err != nil {
		t.Logf("podman run failed on this machine, so the container itself was not run (the binary taken out of the image was): %v: %s",
			err, strings.TrimSpace(string(out)))
		return
	}
	if !waitStatus("http://127.0.0.1:"+port+"/readyz", http.StatusOK, time.Minute) {
		logs, _ := exec.Command("podman", "logs", name).CombinedOutput()
		t.Fatalf("the container did not become ready:\n%s", logs)
	}
	start := time.Now()
	if out, err := exec.Command("podman", "stop", "-t", "30", name).CombinedOutput(); err != nil {
		t.Errorf("podman stop: %v: %s", err, out)
	}
	t.Logf("ran the container: ready on /readyz, stopped in %v", time.Since(start).Round(time.Millisecond))
}

func waitStatus(url string, want int, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == want {
			return true
		}
	}
	return false
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
