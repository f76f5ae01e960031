package demo

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/trustgate/trustgate/resolver"
)

// TestWorld checks the world Start builds, without trustgate: the registry holds what each
// sample says, the trust server's data verifies with the resolver to the samples' signed
// digests, and Check, pointed at the registry itself (which enforces nothing), fails on the
// unsigned and the moved tag. Close releases both ports.
func TestWorld(t *testing.T) {
	ctx := context.Background()
	e, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = e.Close()
		}
	}()

	t.Run("registry", func(t *testing.T) {
		for _, s := range []Sample{e.Signed, e.Unsigned, e.Moved, e.Multi} {
			d, err := remote.Head(mustTag(s.Ref(e.RegistryHost())), remote.WithContext(ctx))
			if err != nil {
				t.Fatalf("HEAD %s: %v", s.Ref(e.RegistryHost()), err)
			}
			if d.Digest != s.Upstream {
				t.Errorf("registry has %s at %s; sample says %s", s.Ref(""), d.Digest, s.Upstream)
			}
		}
		if e.Moved.Upstream == e.Moved.Signed {
			t.Errorf("moved tag: upstream and signed digests are both %s", e.Moved.Signed)
		}
		if e.Signed.Signed != e.Signed.Upstream || e.Multi.Signed != e.Multi.Upstream {
			t.Error("a signed, unmoved tag's signed digest differs from the registry's")
		}
	})

	t.Run("trust data verifies", func(t *testing.T) {
		c, err := resolver.NewClient(resolver.Config{ServerURL: e.NotaryURL, Pinning: resolver.TrustPinning{
			Certs:       map[string][]string{e.Signed.GUN(): {e.RootKeyIDs[e.Signed.GUN()]}, e.Multi.GUN(): {e.RootKeyIDs[e.Multi.GUN()]}},
			DisableTOFU: true,
		}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []Sample{e.Signed, e.Unsigned, e.Moved, e.Multi} {
			st, err := c.Update(ctx, s.GUN())
			if err != nil {
				t.Fatalf("Update(%s): %v", s.GUN(), err)
			}
			got, err := st.Lookup(s.Tag, nil)
			if s.Signed.Hex == "" {
				if !errors.Is(err, resolver.ErrTagNotSigned) {
					t.Errorf("Lookup(%s:%s) = %v, %v; want not signed", s.GUN(), s.Tag, got.Digest, err)
				}
				continue
			}
			if err != nil || got.Digest.String() != s.Signed.String() {
				t.Errorf("Lookup(%s:%s) = %v, %v; want %s", s.GUN(), s.Tag, got.Digest, err, s.Signed)
			}
		}
	})

	t.Run("check fails against a registry that enforces nothing", func(t *testing.T) {
		var out bytes.Buffer
		err := e.Check(ctx, e.RegistryHost(), &out)
		if !errors.Is(err, ErrCheck) {
			t.Fatalf("Check(registry) = %v; want ErrCheck\n%s", err, &out)
		}
		for _, want := range []string{
			"  ok    demo/hello:signed ",
			"  FAIL  demo/hello:unsigned  served sha256:",
			"  FAIL  demo/hello:moved     served " + e.Moved.Upstream.String() + ", want the signed digest " + e.Moved.Signed.String(),
			"  ok    demo/multi:signed ",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("Check output lacks %q:\n%s", want, &out)
			}
		}
	})

	t.Run("close releases the ports", func(t *testing.T) {
		addrs := []string{e.RegistryHost(), strings.TrimPrefix(e.NotaryURL, "http://")}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		closed = true
		for _, a := range addrs {
			if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				c.Close()
				t.Errorf("%s still accepts connections after Close", a)
			}
		}
	})
}

func TestImagesAreReproducible(t *testing.T) {
	a, err := helloImage("x", hostPlatform())
	if err != nil {
		t.Fatal(err)
	}
	b, err := helloImage("x", hostPlatform())
	if err != nil {
		t.Fatal(err)
	}
	c, err := helloImage("y", hostPlatform())
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	dc, _ := c.Digest()
	if da != db || da == dc {
		t.Errorf("digests: same text %s, %s; other text %s", da, db, dc)
	}
}
