package blobstore

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are created even without a Registerer so the store never nil-checks.
type metrics struct {
	hits, misses, writes, corrupt, evictions prometheus.Counter
	servedBytes, writtenBytes                prometheus.Counter
	errors                                   *prometheus.CounterVec
	up, storedBytes                          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, driver string) (*metrics, error) {
	labels := prometheus.Labels{"driver": driver}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "trustgate", Subsystem: "blobstore", Name: name, Help: help, ConstLabels: labels})
	}
	m := &metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "trustgate", Subsystem: "blobstore", Name: "errors_total",
			Help: "Blob store operations that failed (the pull went upstream instead), by operation.", ConstLabels: labels}, []string{"op"}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "trustgate", Subsystem: "blobstore", Name: "up",
			Help: "1 if the blob store's last operation succeeded, 0 while it is skipped after a failure.", ConstLabels: labels}),
		storedBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "trustgate", Subsystem: "blobstore", Name: "stored_bytes",
			Help: "Bytes of blobs in the store after the last sweep.", ConstLabels: labels}),
	}
	m.hits = counter("hits_total", "Blob downloads served from the store.")
	m.misses = counter("misses_total", "Blob downloads the store did not have (fetched upstream).")
	m.servedBytes = counter("served_bytes_total", "Bytes read from the store.")
	m.writes = counter("writes_total", "Verified blobs written to the store.")
	m.writtenBytes = counter("written_bytes_total", "Bytes of verified blobs written to the store.")
	m.corrupt = counter("corrupt_total", "Stored blobs found not to be the verified blob (wrong size or digest) and deleted.")
	m.evictions = counter("evictions_total", "Blobs deleted by the sweeper for age or size.")
	if reg == nil {
		return m, nil
	}
	// Stores sharing a Registerer (one per configuration, reloads) share the collectors, so
	// the counters continue across a reload.
	for _, c := range []*prometheus.Counter{&m.hits, &m.misses, &m.servedBytes, &m.writes, &m.writtenBytes, &m.corrupt, &m.evictions} {
		if err := register(reg, c); err != nil {
			return nil, err
		}
	}
	for _, c := range []*prometheus.Gauge{&m.up, &m.storedBytes} {
		if err := register(reg, c); err != nil {
			return nil, err
		}
	}
	if err := register(reg, &m.errors); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers *c, or replaces it with the collector already registered under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c *C) error {
	err := reg.Register(*c)
	if err == nil {
		return nil
	}
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		return fmt.Errorf("blobstore: metrics: %w", err)
	}
	existing, ok := are.ExistingCollector.(C)
	if !ok {
		return fmt.Errorf("blobstore: metrics: %w", err)
	}
	*c = existing
	return nil
}
