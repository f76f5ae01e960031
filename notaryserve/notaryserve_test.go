package notaryserve_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/trustgate/trustgate/notaryserve"
	"github.com/trustgate/trustgate/resolver"
)

// TestResolverVerifies checks what the demo relies on: trust data signed and served here
// verifies with trustgate's resolver (itself checked against notary v0.7.0), under TOFU and
// with the root pinned by RootKeyID and TOFU disabled.
func TestResolverVerifies(t *testing.T) {
	const gun = "docker.io/demo/hello"
	repo, err := notaryserve.NewRepo(gun, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := notaryserve.Target{Digest: digest.FromString("manifest"), Size: 8}
	if err := repo.SetTarget("signed", want); err != nil {
		t.Fatal(err)
	}
	files, err := repo.Publish(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := notaryserve.NewServer()
	srv.Publish(gun, files)
	hs := httptest.NewServer(srv)
	defer hs.Close()

	for _, tc := range []struct {
		name string
		pin  resolver.TrustPinning
	}{
		{"tofu", resolver.TrustPinning{}},
		{"pinned root, tofu disabled", resolver.TrustPinning{Certs: map[string][]string{gun: {repo.RootKeyID()}}, DisableTOFU: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := resolver.NewClient(resolver.Config{ServerURL: hs.URL, Pinning: tc.pin})
			if err != nil {
				t.Fatal(err)
			}
			st, err := c.Update(context.Background(), gun)
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			got, err := st.Lookup("signed", nil)
			if err != nil {
				t.Fatalf("Lookup(signed): %v", err)
			}
			if got.Digest != want.Digest || got.Size != want.Size || got.Role != "targets" {
				t.Errorf("Lookup(signed) = %s %d %s; want %s %d targets", got.Digest, got.Size, got.Role, want.Digest, want.Size)
			}
			if _, err := st.Lookup("unsigned", nil); !errors.Is(err, resolver.ErrTagNotSigned) {
				t.Errorf("Lookup(unsigned) = %v; want ErrTagNotSigned", err)
			}
		})
	}

	t.Run("a pin on another key refuses the root", func(t *testing.T) {
		c, err := resolver.NewClient(resolver.Config{ServerURL: hs.URL, Pinning: resolver.TrustPinning{
			Certs: map[string][]string{gun: {strings.Repeat("0", 64)}}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Update(context.Background(), gun); !errors.Is(err, resolver.ErrPinMismatch) {
			t.Errorf("Update = %v; want ErrPinMismatch", err)
		}
	})

	t.Run("a republish verifies after the first", func(t *testing.T) {
		c, err := resolver.NewClient(resolver.Config{ServerURL: hs.URL})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Update(context.Background(), gun); err != nil {
			t.Fatal(err)
		}
		moved := notaryserve.Target{Digest: digest.FromString("other"), Size: 5}
		if err := repo.SetTarget("signed", moved); err != nil {
			t.Fatal(err)
		}
		files, err := repo.Publish(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		srv.Publish(gun, files)
		st, err := c.Update(context.Background(), gun)
		if err != nil {
			t.Fatalf("Update after republish: %v", err)
		}
		if got, err := st.Lookup("signed", nil); err != nil || got.Digest != moved.Digest {
			t.Errorf("Lookup(signed) after republish = %v, %v; want %s", got.Digest, err, moved.Digest)
		}
	})

	t.Run("an unknown GUN has no trust data", func(t *testing.T) {
		c, err := resolver.NewClient(resolver.Config{ServerURL: hs.URL})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Update(context.Background(), "docker.io/demo/other"); !errors.Is(err, resolver.ErrNoTrustData) {
			t.Errorf("Update(unknown GUN) = %v; want ErrNoTrustData", err)
		}
	})
}

func TestServerRoutes(t *testing.T) {
	const gun = "docker.io/demo/hello"
	files := map[string][]byte{"root.json": []byte("R"), "1.root.json": []byte("R"), "timestamp.json": []byte("T")}
	srv := notaryserve.NewServer()
	srv.Publish(gun, files)
	srv.Publish(gun, map[string][]byte{"timestamp.json": []byte("T2")})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	sha := func(s string) string { return digest.FromString(s).Encoded() }
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/v2/", 200, "{}"},
		{"GET", "/v2/" + gun + "/_trust/tuf/root.json", 200, "R"},
		{"GET", "/v2/" + gun + "/_trust/tuf/1.root.json", 200, "R"},
		{"GET", "/v2/" + gun + "/_trust/tuf/root." + sha("R") + ".json", 200, "R"},
		{"GET", "/v2/" + gun + "/_trust/tuf/timestamp.json", 200, "T2"},
		{"GET", "/v2/" + gun + "/_trust/tuf/timestamp." + sha("T") + ".json", 200, "T"}, // older bytes by checksum
		{"GET", "/v2/" + gun + "/_trust/tuf/timestamp." + sha("X") + ".json", 404, "METADATA_NOT_FOUND"},
		{"GET", "/v2/" + gun + "/_trust/tuf/snapshot.json", 404, "METADATA_NOT_FOUND"},
		{"GET", "/v2/docker.io/demo/other/_trust/tuf/root.json", 404, "METADATA_NOT_FOUND"},
		{"GET", "/v2/" + gun + "/_trust/tuf/root", 404, "METADATA_NOT_FOUND"},
		{"GET", "/" + gun + "/_trust/tuf/root.json", 404, "METADATA_NOT_FOUND"},
		{"POST", "/v2/" + gun + "/_trust/tuf/", 405, ""},
	} {
		req, _ := http.NewRequest(tc.method, hs.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("%s %s = %d %q; want %d containing %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
	}
}

func TestSetTargetRefusesBadDigests(t *testing.T) {
	repo, err := notaryserve.NewRepo("docker.io/demo/x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tgt := range []notaryserve.Target{
		{Digest: "sha256:abc", Size: 1},
		{Digest: digest.SHA512.FromString("x"), Size: 1},
		{Digest: digest.FromString("x"), Size: 0},
	} {
		if err := repo.SetTarget("t", tgt); err == nil {
			t.Errorf("SetTarget(%v) succeeded", tgt)
		}
	}
}
