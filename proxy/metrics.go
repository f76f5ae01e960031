package proxy

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are created even without a Registerer so handlers never nil-check; unregistered
// collectors just aren't exported.
type metrics struct {
	requests      *prometheus.CounterVec
	decisions     *prometheus.CounterVec
	upstreamBytes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "trustgate", Subsystem: "proxy", Name: "requests_total",
			Help: "Registry API requests by route, method and response status code.",
		}, []string{"route", "method", "code"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "trustgate", Subsystem: "proxy", Name: "decisions_total",
			Help: "Manifest and blob decisions by kind (allow, refuse, warn, error).",
		}, []string{"decision"}),
		upstreamBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "trustgate", Subsystem: "proxy", Name: "upstream_bytes_total",
			Help: "Bytes read from upstream registries, by upstream and kind (manifest, blob).",
		}, []string{"upstream", "kind"}),
	}
	if reg == nil {
		return m, nil
	}
	// Servers sharing a Registerer (one per configuration, reloads) share the counters, so
	// they continue across a reload.
	for _, c := range []**prometheus.CounterVec{&m.requests, &m.decisions, &m.upstreamBytes} {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("proxy: metrics: %w", err)
			}
			*c = existing
		}
	}
	return m, nil
}
