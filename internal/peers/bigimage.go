package peers

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// DeterministicReader returns size pseudo-random bytes that depend only on seed. Benchmarks and the
// large-blob test need gigabytes of incompressible content that never sits in memory and is the same
// on every run.
func DeterministicReader(seed uint64, size int64) io.Reader {
	var key [32]byte
	for i := range 4 {
		v := seed + uint64(i)*0x9e3779b97f4a7c15
		for j := range 8 {
			key[i*8+j] = byte(v >> (8 * j))
		}
	}
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// PushBigImage pushes an image whose single layer is an uncompressed tar holding one file of
// fileSize deterministic bytes. The layer is generated and uploaded as a stream (one PATCH), hashing
// on the way, so a 1 GiB layer costs no memory; content is identical for the same seed.
func PushBigImage(tb testing.TB, reg *Registry, repo, tag string, fileSize int64, seed uint64) Pushed {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: "blob.bin", Mode: 0o644, Size: fileSize, Typeflag: tar.TypeReg,
			ModTime: time.Unix(0, 0)})
		if err == nil {
			_, err = io.Copy(tw, DeterministicReader(seed, fileSize))
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	layer, err := UploadBlob(ctx, reg.URL, repo, pr)
	pr.CloseWithError(err) // unblocks the generator if the upload failed
	if err != nil {
		tb.Fatalf("peers: uploading big layer: %v", err)
	}

	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layer.Digest}},
	})
	config, err := UploadBlob(ctx, reg.URL, repo, bytes.NewReader(cfg))
	if err != nil {
		tb.Fatalf("peers: uploading config: %v", err)
	}
	const mt = "application/vnd.oci.image.manifest.v1+json"
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mt,
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.Digest, "size": config.Size},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.Digest, "size": layer.Size}},
	})
	d, err := PutManifest(ctx, reg.URL, repo, tag, mt, man)
	if err != nil {
		tb.Fatalf("peers: %v", err)
	}
	return Pushed{Repo: repo, Tag: tag, Digest: d, Size: int64(len(man)), MediaType: mt, Layers: []Blob{layer}}
}

// UploadBlob streams r into repo with the registry's POST + PATCH + PUT?digest= upload flow and
// returns the digest and length it computed on the way.
func UploadBlob(ctx context.Context, registryURL, repo string, r io.Reader) (Blob, error) {
	loc, err := startUpload(ctx, registryURL, repo)
	if err != nil {
		return Blob{}, err
	}
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(r, h)}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, loc.String(), io.NopCloser(cr))
	if err != nil {
		return Blob{}, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Blob{}, fmt.Errorf("PATCH upload: %w", err)
	}
	if err := expect(resp, http.StatusAccepted); err != nil {
		return Blob{}, fmt.Errorf("PATCH upload: %w", err)
	}
	next, err := loc.Parse(resp.Header.Get("Location"))
	if err != nil {
		return Blob{}, fmt.Errorf("PATCH upload: bad Location: %w", err)
	}
	b := Blob{Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: cr.n}
	q := next.Query()
	q.Set("digest", b.Digest)
	next.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, next.String(), http.NoBody)
	if err != nil {
		return Blob{}, err
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return Blob{}, fmt.Errorf("PUT upload: %w", err)
	}
	if err := expect(resp, http.StatusCreated); err != nil {
		return Blob{}, fmt.Errorf("PUT upload %s: %w", b.Digest, err)
	}
	return b, nil
}

func startUpload(ctx context.Context, registryURL, repo string) (*url.URL, error) {
	base, err := url.Parse(registryURL + "/v2/" + repo + "/blobs/uploads/")
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String(), http.NoBody)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("starting upload: %w", err)
	}
	if err := expect(resp, http.StatusAccepted); err != nil {
		return nil, fmt.Errorf("starting upload: %w", err)
	}
	return base.Parse(resp.Header.Get("Location"))
}

// PutManifest uploads a manifest as repo:tag (or by its digest when tag is "") and returns the digest
// the registry reports.
func PutManifest(ctx context.Context, registryURL, repo, tag, mediaType string, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	d := "sha256:" + hex.EncodeToString(sum[:])
	ref := tag
	if ref == "" {
		ref = d
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, registryURL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("PUT manifest %s:%s: %w", repo, ref, err)
	}
	if err := expect(resp, http.StatusCreated); err != nil {
		return "", fmt.Errorf("PUT manifest %s:%s: %w", repo, ref, err)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != d {
		return "", fmt.Errorf("PUT manifest %s:%s: registry says %s, bytes hash to %s", repo, ref, got, d)
	}
	return d, nil
}

func expect(resp *http.Response, code int) error {
	defer resp.Body.Close()
	if resp.StatusCode == code {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
