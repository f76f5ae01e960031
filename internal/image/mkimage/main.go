// Command mkimage builds trustgate's container image (package image) from a static binary, with no
// base image and no network: `make image` writes a tarball `docker load` reads; --rootfs lays the
// same files out in a directory instead, for the Dockerfile.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/trustgate/trustgate/internal/image"
)

func main() {
	var in image.Inputs
	flag.StringVar(&in.Binary, "binary", "bin/trustgate-linux", "static trustgate binary (CGO_ENABLED=0 GOOS=linux)")
	flag.StringVar(&in.Config, "config", "configs/trustgate.yaml", "default configuration")
	flag.StringVar(&in.CABundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "PEM CA certificates for https upstreams")
	arch := flag.String("arch", runtime.GOARCH, "architecture of the binary")
	tag := flag.String("tag", "trustgate:dev", "image name the tarball carries")
	out := flag.String("out", "bin/trustgate-image.tar", "docker-loadable tarball to write")
	rootfs := flag.String("rootfs", "", "write the image's files under this directory (rootfs/ and owned/, for the Dockerfile) instead of a tarball")
	flag.Parse()
	if err := run(in, *arch, *tag, *out, *rootfs); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(in image.Inputs, arch, tag, out, rootfs string) error {
	if rootfs != "" {
		return image.WriteRootFS(in, rootfs)
	}
	img, err := image.Build(in, arch)
	if err != nil {
		return err
	}
	t, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, t, img); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("mkimage: %s (%s) written to %s; load it with: docker load -i %s\n", t, d, out, out)
	return nil
}
