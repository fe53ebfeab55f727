package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/qflare/qflare/server/internal/api"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
)

// k8sFiles are the Kubernetes manifests, applied together.
var k8sFiles = []string{"build/deploy/k8s/statefulset.yaml", "build/deploy/k8s/service.yaml", "build/deploy/k8s/ingress.yaml"}

// decodeStrict decodes every document of a YAML stream into the typed
// Kubernetes objects of apps/v1, core/v1 and networking.k8s.io/v1. Unknown
// fields, duplicate fields, unknown kinds and values of the wrong type are
// errors.
func decodeStrict(b []byte) ([]runtime.Object, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	dec := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, err
		}
		if gvk.Kind == "" {
			return nil, errors.New("a document without a kind")
		}
		objs = append(objs, obj)
	}
}

// manifests holds the decoded objects.
type manifests struct {
	sts      []*appsv1.StatefulSet
	services map[string]*corev1.Service
	ingress  []*networkingv1.Ingress
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	m := manifests{services: map[string]*corev1.Service{}}
	for _, f := range k8sFiles {
		objs, err := decodeStrict(read(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, o := range objs {
			switch o := o.(type) {
			case *appsv1.StatefulSet:
				m.sts = append(m.sts, o)
			case *corev1.Service:
				m.services[o.Name] = o
			case *networkingv1.Ingress:
				m.ingress = append(m.ingress, o)
			default:
				t.Errorf("%s: unexpected object %T", f, o)
			}
		}
	}
	if len(m.sts) != 1 || len(m.ingress) != 1 || len(m.services) != 2 {
		t.Fatalf("manifests hold %d StatefulSets, %d Services, %d Ingresses; want 1, 2, 1", len(m.sts), len(m.services), len(m.ingress))
	}
	return m
}

// TestDecodeIsStrict: the decoder the manifest tests rely on refuses a
// misspelt field, a duplicate field and a wrong type, so a typo in a
// manifest fails the test instead of being dropped silently.
func TestDecodeIsStrict(t *testing.T) {
	good := string(read(t, "build/deploy/k8s/statefulset.yaml"))
	if _, err := decodeStrict([]byte(good)); err != nil {
		t.Fatalf("statefulset.yaml: %v", err)
	}
	for name, bad := range map[string]string{
		"misspelt field": strings.Replace(good, "  replicas: 1", "  replica: 1", 1),
		"duplicate":      strings.Replace(good, "  replicas: 1", "  replicas: 1\n  replicas: 2", 1),
		"wrong type":     strings.Replace(good, "  replicas: 1", "  replicas: one", 1),
		"unknown kind":   strings.Replace(good, "kind: StatefulSet", "kind: StatefullSet", 1),
	} {
		if bad == good {
			t.Fatalf("%s: the replacement did not apply", name)
		}
		if _, err := decodeStrict([]byte(bad)); err == nil {
			t.Errorf("%s: decoded without an error; want the decoder to refuse it", name)
		}
	}
}

// TestKubernetesManifests checks what matters for running QFLARE: one
// replica (one SQLite writer) with its database on a persistent volume at
// the image's data folder, probes on paths the server answers, ports that
// meet from the Ingress to the container, the image's user, and a
// termination grace period that covers the server's own.
func TestKubernetesManifests(t *testing.T) {
	cf := parseContainerfile(t)
	m := loadManifests(t)
	sts := m.sts[0]
	spec := sts.Spec
	if spec.Replicas == nil || *spec.Replicas != 1 {
		t.Errorf("StatefulSet replicas = %v; want exactly 1 (SQLite has one writer)", spec.Replicas)
	}
	if svc, ok := m.services[spec.ServiceName]; !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("StatefulSet serviceName %q is not a headless Service of the manifests", spec.ServiceName)
	}
	podLabels := spec.Template.Labels
	for k, v := range spec.Selector.MatchLabels {
		if podLabels[k] != v {
			t.Errorf("StatefulSet selector %s=%s does not match the pod labels %v", k, v, podLabels)
		}
	}
	for name, svc := range m.services {
		for k, v := range svc.Spec.Selector {
			if podLabels[k] != v {
				t.Errorf("Service %s selects %s=%s; the pod has %v", name, k, v, podLabels)
			}
		}
	}
	pod := spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("pod has %d containers; want 1", len(pod.Containers))
	}
	c := pod.Containers[0]

	// Ports: container port = image EXPOSE = QFLARE_ADDR's port.
	_, addrPort, _ := strings.Cut(cf.Env["QFLARE_ADDR"], ":")
	if len(cf.Expose) != 1 || cf.Expose[0] != addrPort {
		t.Errorf("Containerfile EXPOSE %v and QFLARE_ADDR %q disagree", cf.Expose, cf.Env["QFLARE_ADDR"])
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if strconv.Itoa(int(ports["http"])) != addrPort {
		t.Errorf("container port http = %d; want the image's %s", ports["http"], addrPort)
	}

	// Probes: the server's paths, on the container's port.
	probes := map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe}
	wantPath := map[string]string{"readiness": "/readyz", "liveness": "/healthz", "startup": "/healthz"}
	for kind, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe missing or not httpGet", kind)
			continue
		}
		if p.HTTPGet.Path != wantPath[kind] || p.HTTPGet.Port != intstr.FromString("http") {
			t.Errorf("%s probe = %s on port %s; want %s on port http", kind, p.HTTPGet.Path, p.HTTPGet.Port.String(), wantPath[kind])
		}
		checkProbePath(t, kind, p.HTTPGet.Path)
	}

	// The database: on the claim template's volume, at the image's volume.
	if len(cf.Volumes) != 1 || path.Dir(cf.Env["QFLARE_DB"]) != cf.Volumes[0] {
		t.Errorf("Containerfile VOLUME %v does not hold QFLARE_DB %q", cf.Volumes, cf.Env["QFLARE_DB"])
	}
	if len(spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("StatefulSet has %d volume claim templates; want 1", len(spec.VolumeClaimTemplates))
	}
	claim := spec.VolumeClaimTemplates[0]
	mounted := false
	for _, vm := range c.VolumeMounts {
		if vm.Name == claim.Name {
			mounted = true
			if vm.MountPath != cf.Volumes[0] || vm.ReadOnly {
				t.Errorf("claim %s is mounted at %s (read-only %v); want writable at the image's %s", claim.Name, vm.MountPath, vm.ReadOnly, cf.Volumes[0])
			}
		}
	}
	if !mounted {
		t.Errorf("the claim %s is not mounted", claim.Name)
	}
	if len(claim.Spec.AccessModes) != 1 || claim.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Errorf("claim access modes %v; want ReadWriteOnce", claim.Spec.AccessModes)
	}
	if c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem {
		tmp := false
		for _, vm := range c.VolumeMounts {
			tmp = tmp || vm.MountPath == "/tmp"
		}
		if !tmp {
			t.Errorf("read-only root filesystem without a writable /tmp")
		}
	}

	// The image's user, and a group that can write the volume.
	uid, gid, _ := strings.Cut(cf.User, ":")
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsUser == nil || strconv.FormatInt(*sc.RunAsUser, 10) != uid || sc.FSGroup == nil ||
		strconv.FormatInt(*sc.FSGroup, 10) != gid || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("pod security context %+v; want runAsNonRoot, runAsUser %s, fsGroup %s (the image's USER)", sc, uid, gid)
	}

	// Environment: every QFLARE_ variable is one serve reads.
	vars := serveVariables(t)
	grace := 20 * time.Second
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "QFLARE_") && !vars[e.Name] {
			t.Errorf("container sets %s, which serve does not read (serve --help lists %v)", e.Name, vars)
		}
		if e.Name == "QFLARE_GRACE" {
			var err error
			if grace, err = time.ParseDuration(e.Value); err != nil {
				t.Errorf("QFLARE_GRACE %q: %v", e.Value, err)
			}
		}
	}
	preStop := time.Duration(0)
	if l := c.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
		preStop = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
	}
	if tg := pod.TerminationGracePeriodSeconds; tg == nil || time.Duration(*tg)*time.Second < preStop+grace+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v; want at least preStop %v + --grace %v + 5s", tg, preStop, grace)
	}

	// The Ingress reaches the container, and does not cut WebSockets. The
	// host it routes must be one the server answers to (--public-url's or
	// --allow-hosts'), or every request through it gets 421.
	ing := m.ingress[0]
	served := map[string]bool{}
	for _, e := range c.Env {
		switch e.Name {
		case "QFLARE_PUBLIC_URL":
			if u, err := url.Parse(e.Value); err == nil {
				served[u.Hostname()] = true
			}
		case "QFLARE_ALLOW_HOSTS":
			for _, h := range strings.Split(e.Value, ",") {
				served[strings.TrimSpace(h)] = true
			}
		}
	}
	for _, rule := range ing.Spec.Rules {
		if rule.Host != "" && !served[rule.Host] {
			t.Errorf("Ingress host %s is neither QFLARE_PUBLIC_URL's host nor in QFLARE_ALLOW_HOSTS: the server would refuse it (421)", rule.Host)
		}
		for _, p := range rule.HTTP.Paths {
			b := p.Backend.Service
			svc, ok := m.services[b.Name]
			if !ok {
				t.Errorf("Ingress backend %s is not a Service of the manifests", b.Name)
				continue
			}
			found := false
			for _, sp := range svc.Spec.Ports {
				if sp.Name == b.Port.Name && sp.TargetPort == intstr.FromString("http") {
					found = true
				}
			}
			if !found {
				t.Errorf("Ingress backend port %q is not a port of Service %s targeting the container's http", b.Port.Name, b.Name)
			}
		}
	}
	for _, a := range []string{"nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"} {
		secs, err := strconv.Atoi(ing.Annotations[a])
		// The server pings every 54 s; a minute-long timeout would race it.
		if err != nil || secs < 300 {
			t.Errorf("Ingress %s = %q; want a timeout of at least 300 s for WebSockets", a, ing.Annotations[a])
		}
	}
}

// checkProbePath asks the server's real HTTP handler for a probe's path:
// it must answer 200 once the server is ready, and the readiness probe must
// turn 503 when the server drains (that is its point).
func checkProbePath(t *testing.T, kind, p string) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "qflare.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := coord.New(coord.Deps{Store: st, Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, "") }})
	defer c.Close()
	s := api.New(api.Options{Coord: c, Starting: true})
	get := func() int {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, p, nil))
		return w.Code
	}
	s.MarkReady()
	if code := get(); code != http.StatusOK {
		t.Errorf("%s probe GET %s = %d on a ready server; want 200", kind, p, code)
	}
	s.Drain()
	code := get()
	if kind == "readiness" && code != http.StatusServiceUnavailable {
		t.Errorf("readiness probe GET %s = %d on a draining server; want 503", p, code)
	}
	if kind != "readiness" && code != http.StatusOK {
		t.Errorf("%s probe GET %s = %d on a draining server; want 200 (it is alive: killing it would cut the drain short)", kind, p, code)
	}
}

// composeFile is the part of the Compose specification compose.yaml uses;
// decoding into it strictly catches misspelt keys.
type composeFile struct {
	Services map[string]struct {
		Image           string            `json:"image"`
		Ports           []string          `json:"ports"`
		Environment     map[string]string `json:"environment"`
		Volumes         []string          `json:"volumes"`
		ReadOnly        bool              `json:"read_only"`
		Tmpfs           []string          `json:"tmpfs"`
		CapDrop         []string          `json:"cap_drop"`
		SecurityOpt     []string          `json:"security_opt"`
		StopSignal      string            `json:"stop_signal"`
		StopGracePeriod string            `json:"stop_grace_period"`
		Restart         string            `json:"restart"`
		Healthcheck     struct {
			Test        []string `json:"test"`
			Interval    string   `json:"interval"`
			Timeout     string   `json:"timeout"`
			Retries     int      `json:"retries"`
			StartPeriod string   `json:"start_period"`
		} `json:"healthcheck"`
	} `json:"services"`
	Volumes map[string]struct{} `json:"volumes"`
}

// TestComposeFile decodes compose.yaml strictly, validates it with
// docker-compose where it is installed, and checks it against the image and
// the server.
func TestComposeFile(t *testing.T) {
	const file = "build/deploy/compose.yaml"
	var cf composeFile
	if err := yaml.UnmarshalStrict(read(t, file), &cf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if tool, err := exec.LookPath("docker-compose"); err == nil {
		if out, err := exec.Command(tool, "-f", filepath.Join(root, file), "config", "-q").CombinedOutput(); err != nil {
			t.Errorf("docker-compose config: %v\n%s", err, out)
		} else {
			t.Logf("docker-compose config accepts %s", file)
		}
	} else {
		t.Logf("docker-compose is not installed: %s checked by strict decoding only", file)
	}
	img := parseContainerfile(t)
	svc, ok := cf.Services["qflare"]
	if !ok || len(cf.Services) != 1 {
		t.Fatalf("%s services = %v; want qflare alone", file, cf.Services)
	}
	_, port, _ := strings.Cut(img.Env["QFLARE_ADDR"], ":")
	if len(svc.Ports) != 1 || !strings.HasSuffix(svc.Ports[0], ":"+port) {
		t.Errorf("ports %v; want one mapping to the image's port %s", svc.Ports, port)
	}
	if len(svc.Volumes) != 1 || !strings.HasSuffix(svc.Volumes[0], ":"+img.Volumes[0]) {
		t.Errorf("volumes %v; want the database volume at the image's %v", svc.Volumes, img.Volumes)
	}
	vol, _, _ := strings.Cut(svc.Volumes[0], ":")
	if _, ok := cf.Volumes[vol]; !ok {
		t.Errorf("volume %q is not declared (a bind mount would lose the named volume's ownership)", vol)
	}
	vars := serveVariables(t)
	for k := range svc.Environment {
		if strings.HasPrefix(k, "QFLARE_") && !vars[k] {
			t.Errorf("environment %s is not a variable serve reads", k)
		}
	}
	grace, err := time.ParseDuration(svc.Environment["QFLARE_GRACE"])
	if err != nil {
		grace = 20 * time.Second
	}
	stop, err := time.ParseDuration(svc.StopGracePeriod)
	if err != nil || stop < grace+5*time.Second {
		t.Errorf("stop_grace_period %q; want at least --grace %v + 5s", svc.StopGracePeriod, grace)
	}
	if svc.StopSignal != "SIGTERM" || svc.Healthcheck.Test[0] != "CMD" || svc.Healthcheck.Test[1] != img.Entrypoint[0] {
		t.Errorf("stop signal %q, health check %v; want SIGTERM and the image's binary", svc.StopSignal, svc.Healthcheck.Test)
	}
	if len(svc.Tmpfs) != 1 || svc.Tmpfs[0] != "/tmp" {
		t.Errorf("read-only container without a writable /tmp (tmpfs %v)", svc.Tmpfs)
	}
}
