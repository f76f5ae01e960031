package e2e

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestCredentialsNeverForwarded: a client's credentials (Authorization, Proxy-Authorization,
// cookies) never reach the upstream registry or the notary server, and trustgate's own
// credentials for them never appear in a response or in its log, also when they are refused.
func TestCredentialsNeverForwarded(t *testing.T) {
	const (
		regUser, regPass       = "tg-reg-user", "tg-reg-S3CRET-pw"
		notaryUser, notaryPass = "tg-notary-user", "tg-notary-S3CRET-pw"
		wrongPass              = "tg-wrong-S3CRET-pw"
		clientSecret           = "client-S3CRET"
	)
	fw := newFaultWorld(t)
	fw.regFront.requireBasic(regUser, regPass)
	fw.notaryFront.requireBasic(notaryUser, notaryPass)
	t.Cleanup(func() { fw.regFront.requireBasic("", ""); fw.notaryFront.requireBasic("", "") })
	regMark, notaryMark := fw.regFront.mark(), fw.notaryFront.mark()

	// Every secret in every form it could leak in.
	var secrets []string
	for _, up := range [][2]string{{regUser, regPass}, {notaryUser, notaryPass}, {regUser, wrongPass}, {notaryUser, wrongPass}} {
		secrets = append(secrets, up[1], base64.StdEncoding.EncodeToString([]byte(up[0]+":"+up[1])))
	}
	clientBasic := base64.StdEncoding.EncodeToString([]byte("client-user:" + clientSecret))
	clientHeaders := http.Header{
		"Authorization":       {"Bearer " + clientSecret + "-token"},
		"Proxy-Authorization": {"Basic " + clientBasic},
		"Cookie":              {"session=" + clientSecret + "-cookie"},
		"X-Registry-Auth":     {clientSecret + "-xra"},
		"Accept":              manifestAccept,
	}
	checkResponse := func(t *testing.T, what string, code int, header http.Header, body []byte) {
		t.Helper()
		var hs strings.Builder
		_ = header.Write(&hs)
		for _, s := range append(secrets, clientSecret, clientBasic) {
			if strings.Contains(hs.String(), s) || strings.Contains(string(body), s) {
				t.Errorf("%s: response (%d) carries the secret %q:\n%s\n%s", what, code, s, hs.String(), body)
			}
		}
	}

	good := fw.gate(t, peers.GateConfig{RegistryUser: regUser, RegistryPassword: regPass,
		NotaryUser: notaryUser, NotaryPassword: notaryPass})
	bad := fw.gate(t, peers.GateConfig{RegistryUser: regUser, RegistryPassword: wrongPass,
		NotaryUser: notaryUser, NotaryPassword: wrongPass})
	requests := []struct {
		name, path string
		good, bad  int // expected status from the gate with the right and the wrong credentials
	}{
		// With refused notary credentials nothing can be verified, so digests are 503 like tags.
		{"signed tag", "/v2/faults/app/manifests/v1", 200, 503},
		{"unsigned tag", "/v2/faults/app/manifests/nosuchtag", 404, 503},
		{"index", "/v2/faults/multi/manifests/v1", 200, 503},
		{"child by digest", "/v2/faults/multi/manifests/" + fw.multi.Children[0].Digest, 200, 503},
		{"layer", "/v2/faults/app/blobs/" + fw.app.Layers[0].Digest, 200, 503},
		{"tag list", "/v2/faults/app/tags/list", 200, 503},
		{"repository without trust data", "/v2/faults/nothing/manifests/v1", 404, 503},
	}
	for _, gate := range []struct {
		name string
		g    *peers.Trustgate
		bad  bool
	}{{"right credentials", good, false}, {"refused credentials", bad, true}} {
		t.Run(gate.name, func(t *testing.T) {
			for _, rq := range requests {
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					if method == http.MethodHead && rq.name == "tag list" {
						continue // GET only, as in distribution
					}
					req, err := http.NewRequest(method, gate.g.URL+rq.path, nil)
					if err != nil {
						t.Fatal(err)
					}
					req.Header = clientHeaders.Clone()
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatalf("%s %s: %v", method, rq.name, err)
					}
					var body strings.Builder
					_, _ = io.Copy(&body, io.LimitReader(resp.Body, 1<<20))
					resp.Body.Close()
					want := rq.good
					if gate.bad {
						want = rq.bad
					}
					if resp.StatusCode != want {
						t.Errorf("%s %s = %d, want %d: %.300s", method, rq.name, resp.StatusCode, want, body.String())
					}
					checkResponse(t, method+" "+rq.name, resp.StatusCode, resp.Header, []byte(body.String()))
				}
			}
		})
	}

	for _, fr := range []struct {
		name  string
		f     *front
		mark  int
		owner string
	}{{"registry", fw.regFront, regMark, regUser}, {"notary server", fw.notaryFront, notaryMark, notaryUser}} {
		seen := fr.f.requests(fr.mark)
		own := 0
		for _, r := range seen {
			var hs strings.Builder
			_ = r.Header.Write(&hs)
			if strings.Contains(hs.String(), clientSecret) || strings.Contains(hs.String(), clientBasic) {
				t.Errorf("the %s received the client's credentials: %s %s\n%s", fr.name, r.Method, r.Path, hs.String())
			}
			if u, _, ok := (&http.Request{Header: r.Header}).BasicAuth(); ok && u == fr.owner {
				own++
			}
		}
		t.Logf("the %s saw %d requests, %d with trustgate's own credentials", fr.name, len(seen), own)
		if own == 0 {
			t.Errorf("the %s never saw trustgate's own credentials: the test did not exercise authentication", fr.name)
		}
	}
	for _, g := range []*peers.Trustgate{good, bad} {
		log := strings.Join(g.Log.Lines(), "\n")
		for _, s := range append(secrets, clientSecret, clientBasic) {
			if strings.Contains(log, s) {
				t.Errorf("trustgate's log (%s) contains the secret %q", g.Log.Path(), s)
			}
		}
	}
}
