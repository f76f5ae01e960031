package bench

import (
	"context"
	"encoding/xml"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of 4 is the 2nd", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p0 is the minimum", ms(1, 2, 3), 0, 1 * time.Millisecond},
		{"p100 is the maximum", ms(1, 2, 3), 1, 3 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 0.50, 50 * time.Millisecond},
	} {
		if got := Percentile(tc.in, tc.q); got != tc.want {
			t.Errorf("%s: Percentile(%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

// TestRunCountsEveryResponse: the closed loop reports exactly the requests the server answered,
// including those still in flight when time ran out, and counts wrong statuses as errors.
func TestRunCountsEveryResponse(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.URL.Path == "/bad" {
			http.Error(w, "no", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: NewTransport(4)}
	for _, tc := range []struct {
		path     string
		wantErrs bool
	}{{"/ok", false}, {"/bad", true}} {
		served.Store(0)
		res := Run(context.Background(), client, Load{
			Concurrency: 4, Duration: 200 * time.Millisecond, Want: http.StatusOK,
			NewRequest: func(ctx context.Context) (*http.Request, error) {
				return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+tc.path, nil)
			},
		})
		if res.Requests == 0 {
			t.Fatalf("%s: no requests", tc.path)
		}
		if s := served.Load(); int64(res.Requests) != s {
			t.Errorf("%s: %d requests reported, server answered %d", tc.path, res.Requests, s)
		}
		if tc.wantErrs != (res.Errors == res.Requests) || (!tc.wantErrs && res.Errors != 0) {
			t.Errorf("%s: %d errors in %d requests (%s)", tc.path, res.Errors, res.Requests, res.FirstErr)
		}
		if !tc.wantErrs && res.RPS() <= 0 {
			t.Errorf("%s: RPS %v", tc.path, res.RPS())
		}
		for i := 1; i < len(res.Latencies); i++ {
			if res.Latencies[i] < res.Latencies[i-1] {
				t.Fatalf("%s: latencies not sorted", tc.path)
			}
		}
	}
}

func TestFetchAll(t *testing.T) {
	body := strings.Repeat("x", 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	}))
	defer srv.Close()
	client := &http.Client{Transport: NewTransport(8)}
	_, fs := FetchAll(context.Background(), client, srv.URL+"/blob", 8, nil)
	for i, f := range fs {
		if f.Err != nil || f.Bytes != int64(len(body)) {
			t.Errorf("fetch %d: %d bytes, %v", i, f.Bytes, f.Err)
		}
	}
	_, fs = FetchAll(context.Background(), client, srv.URL+"/missing", 1, nil)
	if fs[0].Err == nil {
		t.Error("404 not reported as an error")
	}
}

func TestChartSVG(t *testing.T) {
	c := Chart{
		Title:  "blob <MB/s> & more",
		Series: []string{"direct", "trustgate", "distribution"},
		Groups: []ChartGroup{
			{Label: "1 client", Unit: "MB/s", Values: []float64{1000, 950, 500}},
			{Label: "HEAD", Unit: "req/s", Values: []float64{3000, math.NaN(), 0}},
		},
	}
	svg := c.SVG()
	var doc struct {
		XMLName xml.Name
		Rects   []struct {
			Width string `xml:"width,attr"`
		} `xml:"rect"`
	}
	if err := xml.Unmarshal(svg, &doc); err != nil {
		t.Fatalf("not well-formed XML: %v\n%s", err, svg)
	}
	if doc.XMLName.Local != "svg" {
		t.Errorf("root element %q", doc.XMLName.Local)
	}
	// background + 3 legend swatches + 5 measured bars (the NaN one is drawn as text "n/a")
	if len(doc.Rects) != 1+3+5 {
		t.Errorf("%d rects, want 9", len(doc.Rects))
	}
	for _, want := range []string{"blob &lt;MB/s&gt; &amp; more", "n/a", "950 MB/s", "1000 MB/s"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if string(c.SVG()) != string(svg) {
		t.Error("SVG not deterministic")
	}
}

// TestRunWaitsForSlowRequests: a request still running at the end of the run is completed and
// counted, so a stall shows up in the latencies instead of vanishing from them.
func TestRunWaitsForSlowRequests(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			time.Sleep(300 * time.Millisecond) // longer than the whole run
		}
	}))
	defer srv.Close()
	res := Run(context.Background(), &http.Client{Transport: NewTransport(2)}, Load{
		Concurrency: 2, Duration: 100 * time.Millisecond, Want: http.StatusOK,
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		},
	})
	if got := res.Percentile(1); got < 300*time.Millisecond {
		t.Errorf("slowest request %v; the 300ms one was dropped (%d requests)", got, res.Requests)
	}
	if res.Elapsed < 300*time.Millisecond {
		t.Errorf("elapsed %v: returned before the slow request finished", res.Elapsed)
	}
}

func TestMaxPerInterval(t *testing.T) {
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	got := MaxPerInterval([]Sample{
		{ms(10), ms(1)}, {ms(900), ms(3)}, {ms(999), ms(2)}, // second 0: max 3
		{ms(2500), ms(7)}, // second 1: none; second 2: 7
		{ms(1000), 0},     // second 1 starts here, a 0-latency request
	}, time.Second)
	want := []time.Duration{ms(3), 0, ms(7)}
	if len(got) != len(want) {
		t.Fatalf("MaxPerInterval = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("interval %d: %v, want %v", i, got[i], want[i])
		}
	}
}

// TestRunTimeline: with Timeline, every request is a sample whose start lies within the run.
func TestRunTimeline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	load := Load{
		Concurrency: 2, Duration: 100 * time.Millisecond, Want: http.StatusOK,
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		},
	}
	client := &http.Client{Transport: NewTransport(2)}
	if res := Run(context.Background(), client, load); res.Samples != nil {
		t.Errorf("%d samples kept without Timeline", len(res.Samples))
	}
	load.Timeline = true
	res := Run(context.Background(), client, load)
	if len(res.Samples) != res.Requests || res.Requests == 0 {
		t.Fatalf("%d samples for %d requests", len(res.Samples), res.Requests)
	}
	for _, s := range res.Samples {
		if s.Start < 0 || s.Start > load.Duration || s.Latency <= 0 || s.Start+s.Latency > res.Elapsed {
			t.Fatalf("sample %+v outside the run of %v", s, res.Elapsed)
		}
	}
}
