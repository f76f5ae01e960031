package proxy

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/trustgate/trustgate/internal/peers"
)

func TestMetrics(t *testing.T) {
	reg := peers.StartRegistry(t)
	pr := prometheus.NewRegistry()
	e := newEnv(t, reg, envConfig{metrics: pr})
	img := peers.PushImage(t, reg, "library/alpine", "1")
	e.trust.sign("docker.io/library/alpine", "1", img, "targets")

	e.get("/v2/alpine/manifests/1")
	e.get("/v2/alpine/manifests/unsigned")
	e.get("/v2/alpine/blobs/" + img.Layers[0].Digest)
	e.do(http.MethodPut, "/v2/alpine/manifests/1", nil)

	m := e.srv.metrics
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"manifests 200", value(t, m.requests.WithLabelValues("manifests", "GET", "200")), 1},
		{"manifests 404", value(t, m.requests.WithLabelValues("manifests", "GET", "404")), 1},
		{"blobs 200", value(t, m.requests.WithLabelValues("blobs", "GET", "200")), 1},
		{"unsupported 405", value(t, m.requests.WithLabelValues("unsupported", "PUT", "405")), 1},
		{"allow", value(t, m.decisions.WithLabelValues("allow")), 2},
		{"refuse", value(t, m.decisions.WithLabelValues("refuse")), 1},
		{"manifest bytes", value(t, m.upstreamBytes.WithLabelValues("docker.io", "manifest")), float64(img.Size)},
		{"blob bytes", value(t, m.upstreamBytes.WithLabelValues("docker.io", "blob")), float64(img.Layers[0].Size)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if mfs, err := pr.Gather(); err != nil || len(mfs) != 3 {
		t.Errorf("gather: %d families, %v", len(mfs), err)
	}
	// A second Server on the same registry (a reloaded configuration) continues the counters.
	u := &Upstream{Name: "r", URL: e.srv.def.cfg.URL, Trust: newFakeTrust()}
	s2, err := New(Options{Upstreams: []*Upstream{u}, Policy: mustPolicy(t), Metrics: pr})
	if err != nil {
		t.Fatalf("second Server on the same registry: %v", err)
	}
	defer s2.Close()
	s2.metrics.decisions.WithLabelValues("allow").Inc()
	if got := value(t, m.decisions.WithLabelValues("allow")); got != 3 {
		t.Errorf("allow after the second Server counted one = %v, want 3", got)
	}
	// A collector of another type under a counter's name is still an error.
	pr2 := prometheus.NewRegistry()
	pr2.MustRegister(prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "trustgate_proxy_requests_total", Help: "x"}, []string{"route", "method", "code"}))
	if _, err := New(Options{Upstreams: []*Upstream{u}, Policy: mustPolicy(t), Metrics: pr2}); err == nil {
		t.Error("a gauge registered under a counter's name was accepted")
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
