package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
	"github.com/trustgate/trustgate/resolver/redisstore"
)

// startRedis runs a real redis-server for one test and returns a client of it.
func startRedis(t *testing.T) (*peers.Redis, *redis.Client) {
	t.Helper()
	r := peers.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	return r, rdb
}

// TestRules: the store's own rules, each one Lua script on a real redis-server: files
// never replaced by a lower version, floors only rise, roots first-writer-wins (replaced only by
// a higher version verified against the stored one), the check time is Redis's.
func TestRules(t *testing.T) {
	_, rdb := startRedis(t)
	s := redisstore.New(rdb, redisstore.Options{Prefix: "t:"})
	ctx := context.Background()
	const gun = "example.com/app"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var ne *resolver.NewerError

	must(s.SaveFile(ctx, gun, "timestamp", []byte("ts5"), 5, ""))
	if err := s.SaveFile(ctx, gun, "timestamp", []byte("ts4"), 4, ""); !errors.As(err, &ne) || ne.Version != 5 {
		t.Errorf("older timestamp over a newer one: %v, want NewerError 5", err)
	}
	must(s.SaveFile(ctx, gun, "timestamp", []byte("ts6"), 6, ""))

	must(s.SaveVersions(ctx, gun, map[string]int{"snapshot": 7, "targets": 3}))
	must(s.SaveVersions(ctx, gun, map[string]int{"snapshot": 2, "targets": 4}))

	must(s.SaveFile(ctx, gun, "root", []byte("rootA1"), 1, ""))
	must(s.SaveFile(ctx, gun, "root", []byte("rootA1"), 1, "")) // the same root again
	if err := s.SaveFile(ctx, gun, "root", []byte("rootB1"), 1, ""); !errors.Is(err, resolver.ErrRootConflict) {
		t.Errorf("second first-use root: %v, want ErrRootConflict", err)
	}
	if err := s.SaveFile(ctx, gun, "root", []byte("rootB2"), 2, tuftest.SHA256Hex([]byte("rootB1"))); !errors.Is(err, resolver.ErrRootConflict) {
		t.Errorf("rotation from a root the store does not hold: %v, want ErrRootConflict", err)
	}
	must(s.SaveFile(ctx, gun, "root", []byte("rootA2"), 2, tuftest.SHA256Hex([]byte("rootA1"))))
	if err := s.SaveFile(ctx, gun, "root", []byte("rootA1"), 1, ""); !errors.As(err, &ne) || ne.Version != 2 {
		t.Errorf("older root: %v, want NewerError 2", err)
	}

	st, err := s.Load(ctx, gun, nil)
	must(err)
	want := map[string]int{"timestamp": 6, "snapshot": 7, "targets": 4, "root": 2}
	for role, v := range want {
		if st.Versions[role] != v {
			t.Errorf("floor of %s = %d, want %d (all %v)", role, st.Versions[role], v, st.Versions)
		}
	}
	if string(st.Files["timestamp"]) != "ts6" || string(st.Files["root"]) != "rootA2" {
		t.Errorf("files: %q", st.Files)
	}
	if !st.Checked.IsZero() {
		t.Errorf("checked %v before MarkChecked", st.Checked)
	}
	must(s.MarkChecked(ctx, gun))
	st, err = s.Load(ctx, gun, nil)
	must(err)
	if age := time.Since(st.Checked); age < 0 || age > 5*time.Second {
		t.Errorf("checked %v ago", age)
	}

	must(s.Forget(ctx, gun, []string{"targets", "root"}))
	st, err = s.Load(ctx, gun, nil)
	must(err)
	if _, ok := st.Versions["targets"]; ok || st.Versions["root"] != 2 {
		t.Errorf("after forgetting targets (root is never forgotten): %v", st.Versions)
	}
}

// TestLease: one holder at a time; a waiter gets in when the holder releases; the
// holder renews its lease past its length while it holds it; a holder whose lease was lost (here
// deleted, as if its renewals had failed) and taken by another does not end the other's.
func TestLease(t *testing.T) {
	_, rdb := startRedis(t)
	const lease = 300 * time.Millisecond
	s := redisstore.New(rdb, redisstore.Options{Prefix: "t:", Lease: lease, LockWait: 5 * time.Second})
	ctx := context.Background()
	rel, waited, err := s.Lease(ctx, "g")
	if err != nil || waited {
		t.Fatalf("first lease: waited %v, %v", waited, err)
	}
	got := make(chan func(), 1)
	go func() {
		rel2, waited, err := s.Lease(ctx, "g")
		if err != nil || !waited {
			t.Errorf("second lease: waited %v, %v", waited, err)
		}
		got <- rel2
	}()
	time.Sleep(3 * lease) // renewed meanwhile: the second must still be waiting
	select {
	case <-got:
		t.Fatal("second lease granted while the first was held (not renewed?)")
	default:
	}
	rel()
	var rel2 func()
	select {
	case rel2 = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("second lease not granted after the first was released")
	}
	if err := rdb.Del(ctx, "t:lock/g").Err(); err != nil { // the second loses its lease
		t.Fatal(err)
	}
	rel3, waited3, err := s.Lease(ctx, "g")
	if err != nil || waited3 {
		t.Fatalf("third lease: waited %v, %v", waited3, err)
	}
	rel2()
	if n, _ := rdb.Exists(ctx, "t:lock/g").Result(); n != 1 {
		t.Errorf("a holder that had lost its lease deleted the current one")
	}
	rel3()
	if n, _ := rdb.Exists(ctx, "t:lock/g").Result(); n != 0 {
		t.Errorf("lease still held after release")
	}
}

// TestLoadSendsOnlyWhatChanged: files the caller holds (same sha256) are not sent
// again, only named by hash; a changed one is.
func TestLoadSendsOnlyWhatChanged(t *testing.T) {
	_, rdb := startRedis(t)
	s := redisstore.New(rdb, redisstore.Options{Prefix: "t:"})
	ctx := context.Background()
	for role, raw := range map[string]string{"timestamp": "ts", "targets": "tg"} {
		if err := s.SaveFile(ctx, "g", role, []byte(raw), 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	have := map[string]string{"timestamp": tuftest.SHA256Hex([]byte("ts")), "targets": tuftest.SHA256Hex([]byte("older"))}
	st, err := s.Load(ctx, "g", have)
	if err != nil {
		t.Fatal(err)
	}
	if _, sent := st.Files["timestamp"]; sent || string(st.Files["targets"]) != "tg" {
		t.Errorf("files sent: %q", st.Files)
	}
	if st.Hashes["timestamp"] != have["timestamp"] || st.Hashes["targets"] != tuftest.SHA256Hex([]byte("tg")) {
		t.Errorf("hashes: %v", st.Hashes)
	}
}
