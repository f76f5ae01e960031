// Package image builds trustgate's container image without a base image: one layer holding the
// static binary, a CA bundle, a passwd entry for the non-root user and the directories trustgate
// writes to, on an empty base. The Dockerfile lays out the same files (TestDockerfileMatches).
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's contract, shared with the Dockerfile, deploy/kubernetes and deploy/helm.
const (
	UID        = 65532 // the user trustgate runs as (distroless's "nonroot" number)
	Binary     = "/trustgate"
	ConfigFile = "/etc/trustgate/trustgate.yaml"
	CABundle   = "/etc/ssl/certs/ca-certificates.crt"
	TrustDir   = "/var/lib/trustgate/trust"
	TempDir    = "/tmp"
	Port       = "5000" // the registry listener
	HealthPort = "9090" // metrics, /healthz and /readyz
)

// Env is the image's environment: listen on every interface of the container and keep trust
// state in the volume.
var Env = []string{
	"TRUSTGATE_LISTEN=0.0.0.0:" + Port,
	"TRUSTGATE_METRICS_LISTEN=0.0.0.0:" + HealthPort,
	"TRUSTGATE_TRUST_DIR=" + TrustDir,
	"TMPDIR=" + TempDir,
}

// Entrypoint and Cmd: `docker run IMAGE` serves the mounted configuration; `docker run IMAGE demo`
// runs the offline demo.
var (
	Entrypoint = []string{Binary}
	Cmd        = []string{"serve", "--config", ConfigFile}
)

// Inputs are the files from the build machine that go into the image.
type Inputs struct {
	Binary   string // a static (CGO_ENABLED=0) trustgate for linux
	Config   string // the default configuration (configs/trustgate.yaml)
	CABundle string // PEM CA certificates for https upstreams (e.g. /etc/ssl/certs/ca-certificates.crt)
}

// entry is one file or directory of the layer.
type entry struct {
	path string
	mode int64
	uid  int
	dir  bool
	data []byte
}

func entries(in Inputs) ([]entry, error) {
	read := func(p string) ([]byte, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		return b, nil
	}
	bin, err := read(in.Binary)
	if err != nil {
		return nil, err
	}
	cfg, err := read(in.Config)
	if err != nil {
		return nil, err
	}
	ca, err := read(in.CABundle)
	if err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\ntrustgate:x:%d:%d:trustgate:/var/lib/trustgate:/sbin/nologin\n", UID, UID)
	group := fmt.Sprintf("root:x:0:\ntrustgate:x:%d:\n", UID)
	es := []entry{
		{path: "etc", mode: 0o755, dir: true},
		{path: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{path: "etc/group", mode: 0o644, data: []byte(group)},
		{path: "etc/ssl", mode: 0o755, dir: true},
		{path: "etc/ssl/certs", mode: 0o755, dir: true},
		{path: CABundle[1:], mode: 0o644, data: ca},
		{path: "etc/trustgate", mode: 0o755, dir: true},
		{path: ConfigFile[1:], mode: 0o644, data: cfg},
		{path: Binary[1:], mode: 0o755, data: bin},
		{path: "tmp", mode: 0o1777, dir: true},
		{path: "var", mode: 0o755, dir: true},
		{path: "var/lib", mode: 0o755, dir: true},
		{path: "var/lib/trustgate", mode: 0o755, dir: true},
		{path: TrustDir[1:], mode: 0o700, uid: UID, dir: true},
	}
	sort.Slice(es, func(i, j int) bool { return es[i].path < es[j].path })
	return es, nil
}

// epoch is every file's time, so the same inputs give the same image digest.
var epoch = time.Unix(0, 0).UTC()

// layerTar writes the layer as a tar stream.
func layerTar(es []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.path, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: epoch, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, e.path+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Build returns the image: the layer on an empty base, for linux/amd64 or whatever arch the
// binary is for.
func Build(in Inputs, arch string) (v1.Image, error) {
	es, err := entries(in)
	if err != nil {
		return nil, err
	}
	data, err := layerTar(es)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", arch, v1.Time{Time: epoch}
	cf.Config.User = fmt.Sprintf("%d:%d", UID, UID)
	cf.Config.Env = Env
	cf.Config.Entrypoint = Entrypoint
	cf.Config.Cmd = Cmd
	cf.Config.WorkingDir = "/var/lib/trustgate"
	cf.Config.ExposedPorts = map[string]struct{}{Port + "/tcp": {}, HealthPort + "/tcp": {}}
	cf.Config.Volumes = map[string]struct{}{"/var/lib/trustgate": {}}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "trustgate"}
	return mutate.ConfigFile(img, cf)
}

// WriteRootFS lays the image's files out for the Dockerfile, which cannot keep ownership through
// COPY: what root owns under dir/rootfs, and what the user owns under dir/owned (only the trust
// dir), each at its path in the image. The Dockerfile copies dir/rootfs to / and the contents of
// dir/owned/var/lib/trustgate with --chown, so that the trust dir is a new entry of that COPY.
func WriteRootFS(in Inputs, dir string) error {
	es, err := entries(in)
	if err != nil {
		return err
	}
	for _, e := range es {
		p := filepath.Join(dir, "rootfs", e.path)
		if e.uid != 0 {
			p = filepath.Join(dir, "owned", e.path)
		}
		if e.dir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		} else if err := os.WriteFile(p, e.data, 0o644); err != nil {
			return err
		}
		if err := os.Chmod(p, os.FileMode(e.mode&0o777)|modeBits(e.mode)); err != nil {
			return err
		}
	}
	return nil
}

func modeBits(m int64) os.FileMode {
	if m&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}
