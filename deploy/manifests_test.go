package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The image's contract (internal/image in the main module).
const (
	uid        = 65532
	trustMount = "/var/lib/trustgate"
	configDir  = "/etc/trustgate"
)

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decode strictly decodes every document of a multi-document YAML stream into its k8s.io/api
// type: an unknown or misspelt field, a wrong type or an unknown kind is an error.
func decode(t *testing.T, src string, data []byte) []any {
	t.Helper()
	var objs []any
	for i, doc := range docSep.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%s document %d: %v", src, i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1 Service":
			obj = &corev1.Service{}
		case "v1 PersistentVolumeClaim":
			obj = &corev1.PersistentVolumeClaim{}
		case "apps/v1 Deployment":
			obj = &appsv1.Deployment{}
		case "networking.k8s.io/v1 NetworkPolicy":
			obj = &networkingv1.NetworkPolicy{}
		default:
			t.Errorf("%s document %d: unexpected kind %q %q", src, i, tm.APIVersion, tm.Kind)
			continue
		}
		if err := strictDecode([]byte(doc), obj); err != nil {
			t.Errorf("%s document %d (%s): %v", src, i, tm.Kind, err)
			continue
		}
		objs = append(objs, obj)
	}
	return objs
}

// strictDecode decodes as the API server does, and stricter: field names match case-sensitively,
// and unknown or duplicate fields are errors (encoding/json alone would accept
// "readOnlyRootFileSystem" for readOnlyRootFilesystem).
func strictDecode(doc []byte, obj any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// checkSet verifies what trustgate's image and health endpoints need from a rendered set: probes
// on /healthz and /readyz at the metrics port, non-root, read-only root with the trust dir, the
// temp dir and the configuration as volumes, and a Service for the registry port.
func checkSet(t *testing.T, src string, objs []any, wantPVC bool) {
	t.Helper()
	kinds := map[string]int{}
	var dep *appsv1.Deployment
	for _, o := range objs {
		kinds[fmt.Sprintf("%T", o)]++
		if d, ok := o.(*appsv1.Deployment); ok {
			dep = d
		}
	}
	for _, k := range []string{"*v1.ConfigMap", "*v1.Service", "*v1.Deployment"} {
		if kinds[k] != 1 {
			t.Errorf("%s: %d %s, want 1", src, kinds[k], k)
		}
	}
	if dep == nil {
		return
	}
	ps := dep.Spec.Template.Spec
	if sc := ps.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != uid {
		t.Errorf("%s: pod securityContext %+v: want runAsNonRoot and runAsUser %d", src, sc, uid)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%s: %d containers", src, len(ps.Containers))
	}
	c := ps.Containers[0]
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: container securityContext %+v: want a read-only root and no privilege escalation", src, sc)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["registry"] != 5000 || ports["metrics"] != 9090 {
		t.Errorf("%s: ports %v, want registry 5000 and metrics 9090 (the image's)", src, ports)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s: %s probe %+v, want GET %s on the metrics port", src, p.name, p.probe, p.path)
		}
	}
	vols := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.Volume{}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			t.Errorf("%s: mount %s of undeclared volume %s", src, m.MountPath, m.Name)
		}
		mounts[m.MountPath] = v
	}
	if v := mounts[configDir]; v.ConfigMap == nil {
		t.Errorf("%s: %s is not the ConfigMap", src, configDir)
	}
	if v := mounts[trustMount]; wantPVC && v.PersistentVolumeClaim == nil {
		t.Errorf("%s: %s is not a PersistentVolumeClaim", src, trustMount)
	} else if v.Name == "" {
		t.Errorf("%s: nothing mounted at %s (read-only root)", src, trustMount)
	}
	if v := mounts["/tmp"]; v.EmptyDir == nil {
		t.Errorf("%s: /tmp is not an emptyDir (read-only root)", src)
	}
	if wantPVC && kinds["*v1.PersistentVolumeClaim"] != 1 {
		t.Errorf("%s: %d PersistentVolumeClaims, want 1", src, kinds["*v1.PersistentVolumeClaim"])
	}
}

// TestKubernetesManifests: every file in kubernetes/ decodes strictly, the set is complete, and
// kustomization.yaml lists every manifest.
func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var all []any
	var listed []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "kustomization.yaml" {
			var k struct {
				APIVersion string   `json:"apiVersion"`
				Kind       string   `json:"kind"`
				Resources  []string `json:"resources"`
			}
			if err := strictDecode(data, &k); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			listed = k.Resources
			continue
		}
		all = append(all, decode(t, f, data)...)
	}
	checkSet(t, "kubernetes/", all, true)
	var want []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			want = append(want, filepath.Base(f))
		}
	}
	sort.Strings(listed)
	if strings.Join(listed, ",") != strings.Join(want, ",") {
		t.Errorf("kustomization.yaml lists %v, want %v", listed, want)
	}
}

// helm is the helm binary scripts/install-deps.sh installs.
func helm(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "helm")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("helm not found on PATH or in $GOPATH/bin: run scripts/install-deps.sh")
	return ""
}

func runHelm(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helm(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// TestHelmChart: helm lint --strict passes, and the chart renders, with its defaults and with
// the options switched, to manifests that decode strictly and meet the same checks.
func TestHelmChart(t *testing.T) {
	runHelm(t, "lint", "--strict", "helm/trustgate")
	for _, tc := range []struct {
		name    string
		set     []string
		wantPVC bool
		netpols int
	}{
		{"defaults", nil, true, 0},
		{"no persistence, network policies", []string{"persistence.enabled=false", "networkPolicy.enabled=true"}, false, 2},
	} {
		args := []string{"template", "tg", "helm/trustgate"}
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		objs := decode(t, "helm template ("+tc.name+")", runHelm(t, args...))
		checkSet(t, "helm template ("+tc.name+")", objs, tc.wantPVC)
		n := 0
		for _, o := range objs {
			if _, ok := o.(*networkingv1.NetworkPolicy); ok {
				n++
			}
		}
		if n != tc.netpols {
			t.Errorf("%s: %d NetworkPolicies, want %d", tc.name, n, tc.netpols)
		}
	}
}
