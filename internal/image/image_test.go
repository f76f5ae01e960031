package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func inputs(t *testing.T) Inputs {
	t.Helper()
	dir := t.TempDir()
	in := Inputs{Binary: filepath.Join(dir, "bin"), Config: "../../configs/trustgate.yaml", CABundle: filepath.Join(dir, "ca.pem")}
	for _, f := range []string{in.Binary, in.CABundle} {
		if err := os.WriteFile(f, []byte("content of "+filepath.Base(f)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

// TestBuild: one layer on an empty base, the non-root user owning the trust dir, the binary
// executable, the same digest for the same inputs.
func TestBuild(t *testing.T) {
	in := inputs(t)
	img, err := Build(in, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[strings.TrimSuffix(h.Name, "/")] = fmt.Sprintf("%o %d:%d", h.Mode, h.Uid, h.Gid)
	}
	for p, want := range map[string]string{
		"trustgate":                         "755 0:0",
		"etc/trustgate/trustgate.yaml":      "644 0:0",
		"etc/ssl/certs/ca-certificates.crt": "644 0:0",
		"etc/passwd":                        "644 0:0",
		"var/lib/trustgate":                 "755 0:0",
		"var/lib/trustgate/trust":           "700 65532:65532",
		"tmp":                               "1777 0:0",
	} {
		if got[p] != want {
			t.Errorf("%s: %q, want %q", p, got[p], want)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config: user %q os %q arch %q", cf.Config.User, cf.OS, cf.Architecture)
	}
	again, err := Build(in, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("same inputs, digests %s and %s", d1, d2)
	}
}

// TestDockerfileMatches: the Dockerfile, for users who build with network, makes the image this
// package makes: the same build flags, files, user, environment, ports, volume and command.
func TestDockerfileMatches(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	js := func(v []string) string { s, _ := json.Marshal(v); return strings.ReplaceAll(string(s), ",", ", ") }
	for _, want := range []string{
		`CGO_ENABLED=0 GOOS=linux go build -trimpath -tags "$GO_TAGS" -ldflags "-s -w"`,
		"go run ./internal/image/mkimage --binary /out/trustgate-linux --rootfs /out/image",
		"FROM scratch\n",
		"COPY --from=build /out/image/rootfs/ /\n",
		fmt.Sprintf("COPY --from=build --chown=%d:%d /out/image/owned/var/lib/trustgate/ /var/lib/trustgate/\n", UID, UID),
		fmt.Sprintf("USER %d:%d\n", UID, UID),
		"WORKDIR /var/lib/trustgate\n",
		"ENV " + strings.Join(Env, " ") + "\n",
		"VOLUME /var/lib/trustgate\n",
		"EXPOSE " + Port + " " + HealthPort + "\n",
		"ENTRYPOINT " + js(Entrypoint) + "\n",
		"CMD " + js(Cmd) + "\n",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// WriteRootFS lays out what the layer holds, the user's trust dir apart, and nothing else
	// under owned/.
	dir := t.TempDir()
	if err := WriteRootFS(inputs(t), dir); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{"rootfs/trustgate": 0o755, "rootfs/tmp": 0o777 | os.ModeSticky | os.ModeDir,
		"rootfs/var/lib/trustgate": 0o755 | os.ModeDir, "owned/var/lib/trustgate/trust": 0o700 | os.ModeDir} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil || fi.Mode() != mode {
			t.Errorf("rootfs %s: %v %v, want %v", p, fi.Mode(), err, mode)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "rootfs/var/lib/trustgate/trust")); !os.IsNotExist(err) {
		t.Errorf("the trust dir is in rootfs/ too (COPY would leave it root's): %v", err)
	}
}
