package resolver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/trustgate/trustgate/credscope"
)

// tokenTransport answers a notary-server's 401 Bearer challenge with a token for
// repository:<GUN>:pull (docker registry token auth) and reuses the token until it expires.
//
// Why not go-containerregistry's transport.NewWithContext: it pings /v2/ up front (an extra
// request on every new GUN, and a failed ping would defeat the offline fallback), rewrites
// the scheme per its own http/https heuristics, cannot address a server URL with a path,
// and refuses token realms on private addresses other than the server's own host:port —
// which rules out the common loopback/LAN layout of notary-server plus a separate token
// service. The flow below is what notary's and portieris' clients do: take realm and
// service from the 401 on the real request, fetch a token, retry once.
//
// Credentials go only where creds allows (package credscope): the realm must be on the notary
// server's host or configured, and inner is creds' guard, so nothing else carries them either.
type tokenTransport struct {
	inner              http.RoundTripper
	scope              string
	username, password string
	creds              *credscope.Scope // where username/password may be sent as a token realm
	now                func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
	basic   bool // the server asked for Basic: send credentials up front from now on
}

// errRealmOutOfScope: the 401 names a token realm the credentials may not go to.
var errRealmOutOfScope = errors.New("token realm outside the credentials' scope")

// tokenMinLifetime is the spec's default when expires_in is missing.
const tokenMinLifetime = 60 * time.Second

// cached returns the Authorization value to send up front, if any.
func (t *tokenTransport) cached() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.basic {
		return t.basicAuth()
	}
	if t.token != "" && t.now().Before(t.expires) {
		return "Bearer " + t.token
	}
	return ""
}

func (t *tokenTransport) basicAuth() string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(t.username, t.password)
	return r.Header.Get("Authorization")
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if auth := t.cached(); auth != "" {
		r := req.Clone(req.Context())
		r.Header.Set("Authorization", auth)
		req = r
	}
	resp, err := t.inner.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || req.Body != nil && req.Body != http.NoBody {
		return resp, err
	}
	scheme, params := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	var auth string
	switch scheme {
	case "bearer":
		tok, err := t.fetchToken(req, params)
		if errors.Is(err, errRealmOutOfScope) {
			// Said as the reason the request failed, not as a bare 401.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
			resp.Body.Close()
			return nil, err
		}
		if err != nil {
			return resp, nil // the 401 stands; the caller reports it
		}
		auth = "Bearer " + tok
	case "basic":
		if t.username == "" || req.Header.Get("Authorization") != "" {
			return resp, nil // no credentials, or they were just refused
		}
		t.mu.Lock()
		t.basic = true
		auth = t.basicAuth()
		t.mu.Unlock()
	default:
		return resp, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", auth)
	return t.inner.RoundTrip(r)
}

// fetchToken exchanges (optional) credentials for a bearer token at the challenge's realm.
func (t *tokenTransport) fetchToken(orig *http.Request, params map[string]string) (string, error) {
	realm, err := url.Parse(params["realm"])
	if err != nil || realm.Host == "" || (realm.Scheme != "https" && realm.Scheme != "http") {
		return "", fmt.Errorf("bad token realm %q", params["realm"])
	}
	if t.username != "" && !t.creds.Allows(realm) {
		return "", fmt.Errorf("%w: refusing to send credentials to %s: not the notary server's host (or plain http) and not in token_realms", errRealmOutOfScope, realm.Redacted())
	}
	q := realm.Query()
	if s := params["service"]; s != "" {
		q.Set("service", s)
	}
	q.Set("scope", t.scope)
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(orig.Context(), http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	if t.username != "" {
		req.SetBasicAuth(t.username, t.password)
	}
	start := t.now()
	resp, err := t.inner.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token service returned %d", resp.StatusCode)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("decoding token: %w", err)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" {
		return "", fmt.Errorf("token service returned no token")
	}
	life := time.Duration(body.ExpiresIn) * time.Second
	if life < tokenMinLifetime {
		life = tokenMinLifetime
	}
	t.mu.Lock()
	t.token, t.expires = tok, start.Add(life)
	t.mu.Unlock()
	return tok, nil
}

// parseChallenge parses `Scheme k="v", k2=v2` (RFC 7235 auth-params, one challenge).
func parseChallenge(h string) (scheme string, params map[string]string) {
	params = map[string]string{}
	h = strings.TrimSpace(h)
	sp := strings.IndexAny(h, " \t")
	if sp < 0 {
		return strings.ToLower(h), params
	}
	scheme, rest := strings.ToLower(h[:sp]), h[sp:]
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			return scheme, params
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return scheme, params
		}
		key := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				b.WriteByte(rest[i])
			}
			val = b.String()
			if i < len(rest) {
				i++
			}
			rest = rest[i:]
		} else {
			end := strings.IndexAny(rest, ", \t")
			if end < 0 {
				end = len(rest)
			}
			val, rest = rest[:end], rest[end:]
		}
		params[key] = val
	}
}
