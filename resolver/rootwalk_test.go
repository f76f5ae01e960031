package resolver_test

import (
	"context"
	"math"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// versionedRoot matches the N.root.json requests of a rotation walk.
var versionedRoot = regexp.MustCompile(`/[0-9]+\.root\.json$`)

// TestRootWalkBounded: a trust server that fails the update and then offers a root it signed
// itself, claiming the highest version there is, makes the resolver walk N.root.json from the
// trusted version up. Each step must be signed by the step before, so whatever the server
// answers (the trusted root again, an older legitimate root) the walk stops at the first step
// it cannot prove, and the update fails closed, never "unsigned", within a few requests. (A
// trusted root near the highest version, where the walk's counter could overflow, cannot be:
// canonical JSON, notary's as trustgate's, cannot sign a version above 2^53.)
func TestRootWalkBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		// step answers every N.root.json: the trusted root, or another legitimate one.
		step func(trusted, newer []byte) []byte
	}{
		{name: "every step is the trusted root", step: func(trusted, _ []byte) []byte { return trusted }},
		{name: "every step is a newer legitimate root", step: func(_, newer []byte) []byte { return newer }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tuftest.NewRepo(t, advGUN)
			advBasic(t, r)
			files := r.Publish()
			trusted := files["root.json"]
			srv := tuftest.Serve(t, advGUN, files)
			c := advClient(t, srv.URL)
			if _, err := lookup(t, c, advGUN, "v1"); err != nil {
				t.Fatalf("first pull: %v", err)
			}
			r.SetExpiry(tuftest.Root, time.Now().AddDate(2, 0, 0)) // re-signed, same key, next version
			newer := r.Publish()["root.json"]

			// The attack: a timestamp the trusted root does not accept, and a root of the
			// attacker's own at the highest version.
			r.SignWith(tuftest.Timestamp, advKey(t))
			attacked := r.Publish()
			evil := tuftest.NewRepo(t, advGUN)
			evil.SetVersion(tuftest.Root, math.MaxInt64)
			attacked["root.json"] = evil.Publish()["root.json"]
			srv.Set(advGUN, attacked)
			srv.Override(advGUN, "root.json", tuftest.Response{Body: attacked["root.json"]})
			step := tc.step(trusted, newer)
			srv.ResetRequests()
			handler := tuftest.Response{Handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(step) }}
			for _, n := range []string{"2", "3", "4"} {
				srv.Override(advGUN, n+".root.json", handler)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := c.Update(ctx, advGUN)
			if ctx.Err() != nil {
				t.Fatalf("Update still walking after 10s: %d requests", len(srv.Requests()))
			}
			wantErr(t, err, resolver.ErrRollback, resolver.ErrThreshold, resolver.ErrUnavailable, resolver.ErrInvalid)
			n := 0
			for _, req := range srv.Requests() {
				if versionedRoot.MatchString(req) {
					n++
				}
			}
			if n > 2 {
				t.Errorf("%d N.root.json requests, want at most 2: %v", n, srv.Requests())
			}
		})
	}
}
