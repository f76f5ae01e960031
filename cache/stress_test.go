package cache_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/cache"
	"github.com/trustgate/trustgate/resolver"
)

// countingUpdater answers every Update with the same result and counts the calls.
type countingUpdater struct {
	state *resolver.State
	err   error
	calls atomic.Int32
}

func (u *countingUpdater) Update(context.Context, string) (*resolver.State, error) {
	u.calls.Add(1)
	runtime.Gosched() // let the other callers pile up behind the flight
	return u.state, u.err
}

// TestOneUpdatePerRepositoryUnderLoad is a stress test for the coalescing contract: however the
// callers of one repository interleave with an update that is finishing, a fresh cache entry (a
// verified state or a remembered "no trust data") is never fetched twice. Callers that missed the
// cache just before the flight stored its result must find that result, not start a second flight.
func TestOneUpdatePerRepositoryUnderLoad(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	rc, err := resolver.NewClient(resolver.Config{ServerURL: f.srv.URL, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	state, err := rc.Update(context.Background(), gun)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		u    func() *countingUpdater
	}{
		{"verified state", func() *countingUpdater { return &countingUpdater{state: state} }},
		{"no trust data", func() *countingUpdater {
			return &countingUpdater{err: fmt.Errorf("%s: %w", gun, resolver.ErrNoTrustData)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const rounds, callers = 5000, 16
			extra := 0
			for round := 0; round < rounds; round++ {
				u := tc.u()
				c, err := cache.New(u, cache.Options{TTL: time.Minute, Now: f.clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := 0; i < callers; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						_, err := c.State(context.Background(), gun)
						if (err != nil) != (u.err != nil) || (err != nil && !errors.Is(err, u.err)) {
							t.Errorf("State: %v, want %v", err, u.err)
						}
					}()
				}
				close(start)
				wg.Wait()
				extra += int(u.calls.Load()) - 1
			}
			if extra > 0 {
				t.Fatalf("%d extra updates in %d rounds of %d concurrent cold callers, want 0", extra, rounds, callers)
			}
		})
	}
}
