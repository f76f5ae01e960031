package resolver_test

import (
	"testing"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// TestFastForwardRecovery: whoever held a role's key signed a far-future version (notary-server
// holds the timestamp key, often the snapshot key too), and the owners recover by rotating that
// role's keys. As in notary, the Update that follows the rotation still refuses (its floor came
// from the trusted root of the time), and the next one accepts: a cached file that the trusted
// root's (or its parent's) keys for the role did not sign sets no floor. Without a rotation the
// floor holds.
func TestFastForwardRecovery(t *testing.T) {
	for _, tc := range []struct {
		name string
		role string
		// rotate changes the role's keys (nil: leaves them, the floor must hold).
		rotate func(t *testing.T, r *tuftest.Repo)
	}{
		{name: "timestamp key rotated", role: tuftest.Timestamp,
			rotate: func(t *testing.T, r *tuftest.Repo) { r.SetKeys(tuftest.Timestamp, advKey(t)) }},
		{name: "snapshot key rotated", role: tuftest.Snapshot,
			rotate: func(t *testing.T, r *tuftest.Repo) { r.SetKeys(tuftest.Snapshot, advKey(t)) }},
		{name: "targets key rotated", role: tuftest.Targets,
			rotate: func(t *testing.T, r *tuftest.Repo) { r.SetKeys(tuftest.Targets, advKey(t)) }},
		{name: "delegation key rotated by its parent", role: "targets/releases",
			rotate: func(t *testing.T, r *tuftest.Repo) { r.SetKeys("targets/releases", advKey(t)) }},
		{name: "timestamp threshold raised", role: tuftest.Timestamp,
			rotate: func(t *testing.T, r *tuftest.Repo) {
				r.SetKeys(tuftest.Timestamp, append(r.Keys(tuftest.Timestamp), advKey(t))...)
				r.SetThreshold(tuftest.Timestamp, 2)
			}},
		{name: "timestamp, only the root key rotated", role: tuftest.Timestamp,
			rotate: func(t *testing.T, r *tuftest.Repo) { r.RotateRoot() }},
		{name: "timestamp, nothing rotated", role: tuftest.Timestamp},
	} {
		for _, restart := range []bool{false, true} {
			name := tc.name
			if restart {
				name += "/restarted from TrustDir"
			}
			t.Run(name, func(t *testing.T) {
				r := tuftest.NewRepo(t, advGUN)
				advBasic(t, r)
				srv := tuftest.Serve(t, advGUN, r.Publish())
				dir := t.TempDir()
				withDir := func(c *resolver.Config) { c.TrustDir = dir }
				c := advClient(t, srv.URL, withDir)
				if _, err := lookup(t, c, advGUN, "v2"); err != nil {
					t.Fatalf("first pull: %v", err)
				}
				r.SetVersion(tc.role, 1000000)
				srv.Set(advGUN, r.Publish())
				if _, err := lookup(t, c, advGUN, "v2"); err != nil {
					t.Fatalf("pull of the fast-forwarded %s: %v", tc.role, err)
				}

				recovers := tc.rotate != nil && tc.name != "timestamp, only the root key rotated"
				if tc.rotate != nil {
					tc.rotate(t, r)
				}
				r.SetVersion(tc.role, 5)
				_, want := advBasicAgain(t, r)
				srv.Set(advGUN, r.Publish())
				if restart {
					c = advClient(t, srv.URL, withDir)
				}
				_, err := lookup(t, c, advGUN, "v2")
				wantErr(t, err, resolver.ErrRollback)
				if restart {
					c = advClient(t, srv.URL, withDir)
				}
				got, err := lookup(t, c, advGUN, "v2")
				if !recovers {
					wantErr(t, err, resolver.ErrRollback)
					return
				}
				if err != nil || got.Digest.String() != want {
					t.Fatalf("second update after the rotation: %+v, %v; want %s", got, err, want)
				}
			})
		}
	}
}

// advBasicAgain re-signs v1 and v2 with new content, so every role changes.
func advBasicAgain(t *testing.T, r *tuftest.Repo) (v1, v2 string) {
	v1 = r.AddTarget("targets", "v1", []byte("manifest v1 again"))
	v2 = r.AddTarget("targets/releases", "v2", []byte("manifest v2 again"))
	return v1, v2
}

// TestTargetsKeyRotationKeepsDelegationFloors: the update that follows a targets key rotation
// fails after the new root was trusted (the attacker withholds the new targets), so the cached
// targets is one the trusted root's targets keys did not sign and sets no floor. The
// delegations' floors stay: a replayed older targets/releases under the new targets is refused.
// (notary drops them too, as its old builder loads no delegation without targets; trustgate is
// stricter, see docs/trust.md.)
func TestTargetsKeyRotationKeepsDelegationFloors(t *testing.T) {
	r := tuftest.NewRepo(t, advGUN)
	advBasic(t, r)
	r.SetVersion("targets/releases", 3)
	r.AddTarget("targets/releases", "v2", []byte("three"))
	srv := tuftest.Serve(t, advGUN, r.Publish())
	dir := t.TempDir()
	withDir := func(c *resolver.Config) { c.TrustDir = dir }
	if _, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v2"); err != nil {
		t.Fatalf("first pull: %v", err)
	}
	r.SetKeys(tuftest.Targets, advKey(t))
	r.AddTarget("targets", "v1", []byte("after rotation"))
	files := r.Publish()
	srv.Set(advGUN, files)
	withheld := "targets." + tuftest.SHA256Hex(files["targets.json"]) + ".json"
	srv.Override(advGUN, withheld, tuftest.Response{Status: 503})
	if _, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v2"); err == nil {
		t.Fatal("update with the new targets withheld succeeded")
	}
	srv.ClearOverride(advGUN, withheld)

	r.SetVersion("targets/releases", 2)
	r.AddTarget("targets/releases", "v2", []byte("rolled back"))
	srv.Set(advGUN, r.Publish())
	_, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v2")
	wantErr(t, err, resolver.ErrRollback)
}
