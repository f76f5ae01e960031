package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// manifestAccept is what docker and crane send when asking for a manifest.
var manifestAccept = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

// world is one upstream registry, its notary-server and a publisher's notary CLI.
type world struct {
	reg    *peers.Registry
	notary *peers.Notary
	cli    *peers.NotaryCLI
	inited map[string]bool
}

func newWorld(t *testing.T) *world {
	t.Helper()
	reg := peers.StartRegistry(t)
	n := peers.StartNotary(t)
	return &world{reg: reg, notary: n, cli: peers.NewNotaryCLI(t, n.URL), inited: map[string]bool{}}
}

// gun is the Notary GUN docker uses for a Docker Hub repository path.
func gun(repo string) string { return "docker.io/" + repo }

// push pushes a random image as repo:tag upstream.
func (w *world) push(t *testing.T, repo, tag string) peers.Pushed {
	t.Helper()
	return peers.PushImage(t, w.reg, repo, tag)
}

// sign makes tag in repo's GUN point at p (creating the GUN the way docker does on first use).
func (w *world) sign(t *testing.T, repo, tag string, p peers.Pushed) {
	t.Helper()
	g := gun(repo)
	if !w.inited[g] {
		w.cli.InitRepo(g)
		w.inited[g] = true
	}
	peers.Sign(t, w.cli, g, tag, p)
}

// pushSigned pushes a new image as repo:tag and signs it.
func (w *world) pushSigned(t *testing.T, repo, tag string) peers.Pushed {
	t.Helper()
	p := w.push(t, repo, tag)
	w.sign(t, repo, tag, p)
	return p
}

// gate starts trustgate in front of w, dumping its log if the test fails.
func (w *world) gate(t *testing.T, cfg peers.GateConfig) *peers.Trustgate {
	t.Helper()
	cfg.RegistryURL, cfg.NotaryURL = w.reg.URL, w.notary.URL
	g := peers.StartTrustgate(t, trustgateBin, cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trustgate log (%s), last lines:\n%s", g.Log.Path(), g.Log.Tail(60))
		}
	})
	return g
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) digest() string {
	sum := sha256.Sum256(r.body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// get issues a raw request so tests see status codes and headers exactly as clients do.
func get(t *testing.T, method, url string, accept ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accept {
		req.Header.Add("Accept", a)
	}
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// getManifest fetches repo:ref through trustgate with the Accept list of docker.
func getManifest(t *testing.T, g *peers.Trustgate, repo, ref string) response {
	t.Helper()
	return get(t, http.MethodGet, g.URL+"/v2/"+repo+"/manifests/"+ref, manifestAccept...)
}

// eventually polls cond until it reports true or bound passes. It is for eventual consistency
// (trust_ttl expiry), not for timing assertions: bound is generous.
func eventually(t *testing.T, bound time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(bound)
	for {
		ok, state := cond()
		if ok {
			t.Logf("%s: true after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v; last state: %s", what, bound, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// findDecision returns the decision records for repo (GUN) and tag. trustgate logs a decision
// just after its response, so it waits (up to 5s) for at least one record to appear.
func findDecision(g *peers.Trustgate, repo, tag string) []peers.Decision {
	var out []peers.Decision
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		for _, d := range g.Decisions() {
			if d.Repo == repo && d.Tag == tag {
				out = append(out, d)
			}
		}
		if len(out) > 0 || time.Now().After(deadline) {
			return out
		}
	}
}

func decisionsString(ds []peers.Decision) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.Repo + ":" + d.Tag + " " + d.Decision + " (" + d.Reason + ") " + d.Digest + "\n")
	}
	return b.String()
}
