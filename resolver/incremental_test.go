package resolver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
)

const incGUN = "example.com/team/incremental"

// testClock is a settable clock for the resolver and tuftest's expiries.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock           { c := &testClock{}; c.ns.Store(time.Now().UnixNano()); return c }
func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// incFixture is a repository with tags in targets and in ten delegations, served, and a
// client over a trust dir.
func incFixture(t *testing.T, opts ...tuftest.Option) (*tuftest.Repo, *tuftest.Server, *Client, *testClock) {
	t.Helper()
	clk := newTestClock()
	repo := tuftest.NewRepo(t, incGUN, append([]tuftest.Option{tuftest.WithNow(clk.Now)}, opts...)...)
	repo.AddTarget("targets", "v1", []byte("one"))
	for i := range 10 {
		name := fmt.Sprintf("targets/d%d", i)
		repo.AddDelegation(name, []*tuftest.Key{tuftest.NewKey(t, tuftest.ECDSA)}, []string{""}, 1)
		repo.AddTarget(name, fmt.Sprintf("d%d-v1", i), []byte(name))
	}
	srv := tuftest.Serve(t, incGUN, repo.Publish())
	c, err := NewClient(Config{ServerURL: srv.URL, TrustDir: t.TempDir(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return repo, srv, c, clk
}

func update(t *testing.T, c *Client) *State {
	t.Helper()
	st, err := c.Update(context.Background(), incGUN)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestUnchangedRecheckVerifiesNothing: a re-check that finds the same timestamp costs the
// timestamp request and no signature check, and returns the same State (the proxy keys what
// it derives on the State's identity).
func TestUnchangedRecheckVerifiesNothing(t *testing.T) {
	_, srv, c, clk := incFixture(t)
	first := update(t, c)
	if n := c.verifications.Load(); n < 13 {
		t.Fatalf("a cold update ran %d verifications, want root, timestamp, snapshot, targets and 10 delegations", n)
	}
	clk.Add(time.Hour)
	before := c.verifications.Load()
	srv.ResetRequests()
	again := update(t, c)
	if n := c.verifications.Load() - before; n != 0 {
		t.Errorf("unchanged re-check ran %d verifications, want 0", n)
	}
	if again != first {
		t.Error("unchanged re-check returned a new State")
	}
	if reqs := srv.Requests(); len(reqs) != 1 {
		t.Errorf("unchanged re-check made requests %v, want the timestamp only", reqs)
	}
}

// TestRecheckVerifiesOnlyChangedRoles: one new tag in one delegation re-verifies the
// timestamp, the snapshot and that delegation, nothing else; a re-signed timestamp over the
// same snapshot re-verifies the timestamp alone and keeps the roles (and their index).
func TestRecheckVerifiesOnlyChangedRoles(t *testing.T) {
	repo, srv, c, clk := incFixture(t)
	first := update(t, c)
	clk.Add(time.Hour)

	repo.AddTarget("targets/d3", "d3-v2", []byte("new"))
	srv.Set(incGUN, repo.Publish())
	before := c.verifications.Load()
	st := update(t, c)
	if n := c.verifications.Load() - before; n != 3 {
		t.Errorf("re-check after one new tag ran %d verifications, want 3 (timestamp, snapshot, targets/d3)", n)
	}
	if _, err := st.Lookup("d3-v2", []string{"targets/d3"}); err != nil {
		t.Fatalf("new tag: %v", err)
	}
	if st.roles["targets/d5"] != first.roles["targets/d5"] {
		t.Error("an unchanged delegation was rebuilt")
	}

	repo.SetExpiry(tuftest.Timestamp, clk.Now().AddDate(0, 0, 20))
	srv.Set(incGUN, repo.Publish())
	before = c.verifications.Load()
	st2 := update(t, c)
	if n := c.verifications.Load() - before; n != 1 {
		t.Errorf("re-check after a re-signed timestamp ran %d verifications, want 1", n)
	}
	if st2 == st || st2.index != st.index || !st2.Expires().After(st.Expires()) {
		t.Errorf("re-signed timestamp: want a new State with a later expiry sharing the index")
	}
}

// TestRecheckIndexesRoleSetsInUse: an update that builds a new index (the trust data changed)
// also indexes every role set the last State was asked about, not only the default roles, so
// the first request after a refresh under a policy that names its own roles does not index every
// tag on the request path while the others wait for it.
func TestRecheckIndexesRoleSetsInUse(t *testing.T) {
	repo, srv, c, clk := incFixture(t)
	first := update(t, c)
	asked := [][]string{{"targets"}, {"targets/d3", "targets"}}
	for _, roles := range asked {
		if _, err := first.Lookup("v1", roles); err != nil {
			t.Fatalf("Lookup under %v: %v", roles, err)
		}
	}
	clk.Add(time.Hour)
	repo.AddTarget("targets", "v2", []byte("two"))
	srv.Set(incGUN, repo.Publish())
	st := update(t, c)
	if st.index == first.index {
		t.Fatal("new targets kept the last State's index")
	}
	st.index.mu.Lock()
	for _, roles := range append(asked, DefaultRoles) {
		ix, ok := st.index.byRoles[strings.Join(roles, "\x00")]
		if !ok {
			t.Errorf("role set %v asked of the last State is not indexed by the update", roles)
		} else if _, signed := ix.owner("v2"); !signed {
			t.Errorf("index of %v lacks the new tag", roles)
		}
	}
	st.index.mu.Unlock()
	if got, err := st.Lookup("v2", []string{"targets"}); err != nil || got.Tag != "v2" {
		t.Errorf("new tag under [targets]: %+v, %v", got, err)
	}
}

// TestUnchangedRecheckStillChecksExpiry: a delegation that expires while the timestamp stays
// the same is skipped on the next re-check, as a full verification would (not served from the
// last State).
func TestUnchangedRecheckStillChecksExpiry(t *testing.T) {
	repo, srv, c, clk := incFixture(t)
	repo.SetExpiry("targets/d1", clk.Now().Add(2*time.Hour))
	srv.Set(incGUN, repo.Publish())
	first := update(t, c)
	if _, err := first.Lookup("d1-v1", []string{"targets/d1"}); err != nil {
		t.Fatal(err)
	}
	clk.Add(3 * time.Hour)
	st := update(t, c)
	if st == first {
		t.Fatal("re-check past a delegation's expiry returned the last State")
	}
	if _, err := st.Lookup("d1-v1", []string{"targets/d1"}); !errors.Is(err, ErrTagNotSigned) {
		t.Fatalf("tag of an expired delegation: %v, want not signed", err)
	}
	// The timestamp's own checks run on every re-check: past its expiry, no State.
	clk.Add(15 * 24 * time.Hour)
	srv.Override(incGUN, "timestamp.json", tuftest.Response{Status: 503})
	if _, err := c.Update(context.Background(), incGUN); !errors.Is(err, ErrExpired) {
		t.Fatalf("re-check past the timestamp's expiry: %v, want ErrExpired", err)
	}
}

// TestRevokedDelegationKeyReverifies: a parent that changes a delegation's keys makes the
// delegation's unchanged bytes verify again, against the new keys.
func TestRevokedDelegationKeyReverifies(t *testing.T) {
	repo, srv, c, _ := incFixture(t)
	update(t, c)
	old := srv.Files(incGUN)["targets/d2.json"]
	repo.SetKeys("targets/d2", tuftest.NewKey(t, tuftest.ECDSA))
	// The snapshot lists the old bytes, signed only by the key targets no longer lists.
	repo.MutateFile("targets/d2", func([]byte) []byte { return old })
	srv.Set(incGUN, repo.Publish())
	st, err := c.Update(context.Background(), incGUN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lookup("d2-v1", []string{"targets/d2"}); !errors.Is(err, ErrTagNotSigned) {
		t.Fatalf("tag signed only by a revoked key: %v, want not signed", err)
	}
}

// TestRootVerifiedOncePerVersion: the trusted root is validated when it is loaded and again
// only once a certificate it rests on has expired.
func TestRootVerifiedOncePerVersion(t *testing.T) {
	clk := newTestClock()
	notAfter := clk.Now().Add(48 * time.Hour)
	repo := tuftest.NewRepo(t, incGUN, tuftest.WithNow(clk.Now), tuftest.WithRootCertValidity(clk.Now().Add(-time.Hour), notAfter))
	repo.AddTarget("targets", "v1", []byte("one"))
	srv := tuftest.Serve(t, incGUN, repo.Publish())
	c, err := NewClient(Config{ServerURL: srv.URL, TrustDir: t.TempDir(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	update(t, c)
	for range 3 {
		clk.Add(time.Hour)
		before := c.verifications.Load()
		update(t, c)
		if n := c.verifications.Load() - before; n != 0 {
			t.Fatalf("re-check validated something again (%d)", n)
		}
	}
	clk.Add(48 * time.Hour)
	if _, err := c.Update(context.Background(), incGUN); !errors.Is(err, ErrExpired) {
		t.Fatalf("re-check past the root certificate's expiry: %v, want ErrExpired", err)
	}
}

// TestEvictReloads: an evicted repository is reloaded on its next Update from the trust dir (or,
// without one, from the root and floors eviction keeps): no new trust on first use, no request
// beyond the timestamp (with a trust dir), and an older publish replayed afterwards is still
// refused.
func TestEvictReloads(t *testing.T) {
	for _, memory := range []bool{false, true} {
		t.Run(fmt.Sprintf("memory=%v", memory), func(t *testing.T) {
			clk := newTestClock()
			repo := tuftest.NewRepo(t, incGUN, tuftest.WithNow(clk.Now))
			repo.AddTarget("targets", "v1", []byte("one"))
			old := repo.Publish()
			repo.AddTarget("targets", "v2", []byte("two"))
			srv := tuftest.Serve(t, incGUN, repo.Publish())
			dir := t.TempDir()
			if memory {
				dir = ""
			}
			c, err := NewClient(Config{ServerURL: srv.URL, TrustDir: dir, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			update(t, c)
			if !c.Evict(incGUN) {
				t.Fatal("idle repository not evicted")
			}
			if g, ok := c.guns[incGUN]; ok && (!memory || g.last != nil || len(g.verified) != 0 || len(g.files) != 2) {
				t.Fatal("evicted repository's verified state still held")
			}
			srv.ResetRequests()
			st := update(t, c)
			if _, err := st.Lookup("v2", nil); err != nil {
				t.Fatal(err)
			}
			for _, r := range srv.Requests() {
				if r != incGUN+"/timestamp.json" && !memory {
					t.Errorf("reload from the trust dir requested %s", r)
				}
				if r == incGUN+"/root.json" {
					t.Errorf("reload trusted the root anew: %v", srv.Requests())
				}
			}
			c.Evict(incGUN)
			srv.Set(incGUN, old)
			if _, err := c.Update(context.Background(), incGUN); !errors.Is(err, ErrRollback) {
				t.Fatalf("replay after an eviction: %v, want ErrRollback", err)
			}
		})
	}
}
