package oracle_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/trustgate/trustgate/notaryserve"
	"github.com/trustgate/trustgate/oracle"
)

// TestNotaryAcceptsNotaryserve: the real notary client library verifies what `trustgate demo`'s
// trust server signs and serves — with the root pinned to RootKeyID and TOFU off, as the demo
// configures trustgate — and finds the signed tag at its digest and the unsigned one not signed.
func TestNotaryAcceptsNotaryserve(t *testing.T) {
	const gun = "docker.io/demo/hello"
	repo, err := notaryserve.NewRepo(gun, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := notaryserve.Target{Digest: digest.FromString("a manifest"), Size: 10}
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

	c := oracle.New(nil, oracle.Pinning{Certs: map[string][]string{gun: {repo.RootKeyID()}}, DisableTOFU: true})
	got := c.Resolve(context.Background(), hs.URL, gun, "signed")
	if !got.Accepted || got.Digest != want.Digest.String() || got.Size != want.Size || got.Role != "targets" {
		t.Errorf("notary: signed = %+v; want accepted at %s (%d bytes) by targets", got, want.Digest, want.Size)
	}
	if got := c.Resolve(context.Background(), hs.URL, gun, "unsigned"); got.Accepted || !got.NotSigned {
		t.Errorf("notary: unsigned = %+v; want not signed", got)
	}
	if got := oracle.Resolve(context.Background(), hs.URL, "docker.io/demo/none", "signed"); got.Accepted || !got.NoTrustData {
		t.Errorf("notary: unknown GUN = %+v; want no trust data", got)
	}
}
