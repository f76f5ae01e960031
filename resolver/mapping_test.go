package resolver_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// sentinels names every error kind the mapping table in docs/trust.md may cite.
var sentinels = map[string]error{
	"ErrTagNotSigned": resolver.ErrTagNotSigned,
	"ErrNoTrustData":  resolver.ErrNoTrustData,
	"ErrUnavailable":  resolver.ErrUnavailable,
	"ErrRejected":     resolver.ErrRejected,
	"ErrExpired":      resolver.ErrExpired,
	"ErrRollback":     resolver.ErrRollback,
	"ErrPinMismatch":  resolver.ErrPinMismatch,
	"ErrThreshold":    resolver.ErrThreshold,
	"ErrChecksum":     resolver.ErrChecksum,
	"ErrInvalid":      resolver.ErrInvalid,
}

type mappingRow struct {
	errs   []string // sentinel names; none = resolves
	status int
}

// docMapping reads the "what happened → resolver error → trustgate answers" table of
// docs/trust.md, keyed by its first column.
func docMapping(t *testing.T) map[string]mappingRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "trust.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := bytes.Cut(b, []byte("| what happened | resolver error | trustgate answers |"))
	if !ok {
		t.Fatal("docs/trust.md has no mapping table")
	}
	rows := map[string]mappingRow{}
	names := regexp.MustCompile("`(Err[A-Za-z]+)`")
	for _, line := range strings.Split(string(table), "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 3 {
			t.Fatalf("malformed row %q", line)
		}
		var r mappingRow
		for _, m := range names.FindAllStringSubmatch(cells[1], -1) {
			r.errs = append(r.errs, m[1])
		}
		if r.status, err = strconv.Atoi(strings.Fields(cells[2])[0]); err != nil {
			t.Fatalf("row %q: status: %v", line, err)
		}
		rows[strings.TrimSpace(cells[0])] = r
	}
	return rows
}

// redirect answers with a 302 to a server of its own that serves body.
func redirect(t *testing.T, body []byte) tuftest.Response {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	t.Cleanup(target.Close)
	return tuftest.Response{Handler: func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusFound)
	}}
}

// TestStatusMapping is the 404-vs-503 table of docs/trust.md, one case per row: what the trust
// server did (or what state trustgate is in), the error kinds the resolver returns, and the
// status the proxy derives from them (resolver.IsNotSigned → 404, any other error → 503).
func TestStatusMapping(t *testing.T) {
	start := time.Now()
	type env struct {
		r   *tuftest.Repo
		srv *tuftest.Server
		dir string
		now *time.Time
		// pull resolves tag with the client under test and requires success.
		pull func(tag string)
	}
	status := func(code int) func(*testing.T, env) {
		return func(t *testing.T, e env) {
			e.srv.Override(advGUN, "timestamp.json", tuftest.Response{Status: code})
		}
	}
	cases := []struct {
		name string
		// pulled: the client resolves v1 once before then runs (so it holds a cached timestamp).
		pulled bool
		then   func(t *testing.T, e env)
		tag    string
	}{
		{name: "root.json 404 on first contact", then: func(t *testing.T, e env) {
			e.srv.Override(advGUN, "root.json", tuftest.Response{Status: 404})
		}},
		{name: "tag signed by no accepted role", tag: "nope"},
		{name: "tag signed only by another delegation", tag: "v9"},
		{name: "timestamp.json 404, cached timestamp valid", pulled: true, then: status(404)},
		{name: "timestamp.json 401, cached timestamp valid", pulled: true, then: status(401)},
		{name: "timestamp.json 403, cached timestamp valid", pulled: true, then: status(403)},
		{name: "timestamp.json 500, cached timestamp valid", pulled: true, then: status(500)},
		{name: "timestamp.json 503, cached timestamp valid", pulled: true, then: status(503)},
		{name: "trust server unreachable, cached timestamp valid", pulled: true, then: func(t *testing.T, e env) {
			e.srv.Close()
		}},
		{name: "timestamp.json redirected, cached timestamp valid", pulled: true, then: func(t *testing.T, e env) {
			e.srv.Override(advGUN, "timestamp.json", redirect(t, []byte(`{}`)))
		}},
		{name: "timestamp.json 400, cached timestamp valid", pulled: true, then: status(400)},
		{name: "timestamp.json body cut short, cached timestamp valid", pulled: true, then: func(t *testing.T, e env) {
			ts := e.srv.Files(advGUN)["timestamp.json"]
			e.srv.Override(advGUN, "timestamp.json", tuftest.Response{Body: ts[:len(ts)/2], ContentLength: int64(len(ts))})
		}},
		{name: "timestamp.json over 1 MiB, cached timestamp valid", pulled: true, then: func(t *testing.T, e env) {
			ts := e.srv.Files(advGUN)["timestamp.json"]
			e.srv.Override(advGUN, "timestamp.json", tuftest.Response{Body: append(ts, bytes.Repeat([]byte(" "), 1<<20)...)})
		}},
		{name: "timestamp.json 503, no cached timestamp", then: status(503)},
		{name: "timestamp.json 503, cached timestamp expired", pulled: true, then: func(t *testing.T, e env) {
			*e.now = start.AddDate(0, 0, 15) // the timestamp lives 14 days
			e.srv.Override(advGUN, "timestamp.json", tuftest.Response{Status: 503})
		}},
		{name: "root.json 400 on first contact", then: func(t *testing.T, e env) {
			e.srv.Override(advGUN, "root.json", tuftest.Response{Status: 400})
		}},
		{name: "root.json 500 on first contact", then: func(t *testing.T, e env) {
			e.srv.Override(advGUN, "root.json", tuftest.Response{Status: 500})
		}},
		{name: "root.json redirected on first contact", then: func(t *testing.T, e env) {
			e.srv.Override(advGUN, "root.json", redirect(t, e.srv.Files(advGUN)["root.json"]))
		}},
		{name: "root.json over 1 MiB on first contact", then: func(t *testing.T, e env) {
			// Valid JSON that notary (which reads up to 100 MiB) would accept.
			e.srv.Override(advGUN, "root.json", tuftest.Response{Body: append(bytes.Repeat([]byte(" "), 1<<20), e.srv.Files(advGUN)["root.json"]...)})
		}},
		{name: "snapshot 404", then: func(t *testing.T, e env) {
			snap := e.srv.Files(advGUN)["snapshot.json"]
			e.srv.Override(advGUN, "snapshot."+tuftest.SHA256Hex(snap)+".json", tuftest.Response{Status: 404})
		}},
		{name: "timestamp signature invalid", then: func(t *testing.T, e env) {
			e.srv.SetFile(advGUN, "timestamp.json", flipFirst(t, e.srv.Files(advGUN)["timestamp.json"], `"sig":"`))
		}},
		{name: "targets does not match the hash snapshot lists", then: func(t *testing.T, e env) {
			tg := e.srv.Files(advGUN)["targets.json"]
			e.srv.Override(advGUN, "targets."+tuftest.SHA256Hex(tg)+".json", tuftest.Response{Body: flipFirst(t, tg, `"sha256":"`)})
		}},
		{name: "timestamp older than one verified before", pulled: true, then: func(t *testing.T, e env) {
			old := e.srv.Files(advGUN)
			e.r.AddTarget("targets", "v3", []byte("v3"))
			e.srv.Set(advGUN, e.r.Publish())
			e.pull("v3")
			e.srv.Set(advGUN, old)
		}},
		{name: "timestamp expired", then: func(t *testing.T, e env) {
			*e.now = start.AddDate(0, 0, 15)
		}},
		{name: "root does not match trust pinning", then: func(t *testing.T, e env) {
			// The client under test pins this GUN to another key (see below).
		}},
		{name: "malformed timestamp", then: func(t *testing.T, e env) {
			e.srv.SetFile(advGUN, "timestamp.json", []byte(`{"signed":`))
		}},
		{name: "trust state cannot be persisted", pulled: true, then: func(t *testing.T, e env) {
			// A non-empty directory where versions.json goes: the rename fails, even for root.
			vf := filepath.Join(gunDir(e.dir), "versions.json")
			if err := os.Remove(vf); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(vf, "blocker"), 0o700); err != nil {
				t.Fatal(err)
			}
			e.r.AddTarget("targets", "v1", []byte("v1 new"))
			e.srv.Set(advGUN, e.r.Publish())
		}},
	}

	doc := docMapping(t)
	tested := map[string]bool{}
	for _, tc := range cases {
		tested[tc.name] = true
		row, ok := doc[tc.name]
		if !ok {
			t.Errorf("case %q has no row in docs/trust.md", tc.name)
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			now := start
			r := tuftest.NewRepo(t, advGUN, tuftest.WithNow(func() time.Time { return start }))
			advBasic(t, r)
			r.AddDelegation("targets/alice", []*tuftest.Key{advKey(t)}, nil, 1)
			r.AddTarget("targets/alice", "v9", []byte("alice"))
			srv := tuftest.Serve(t, advGUN, r.Publish())
			e := env{r: r, srv: srv, dir: t.TempDir(), now: &now}
			c := advClient(t, srv.URL, func(c *resolver.Config) {
				c.TrustDir = e.dir
				c.Now = func() time.Time { return now }
				if tc.name == "root does not match trust pinning" {
					c.Pinning.Certs = map[string][]string{advGUN: tuftest.NewRepo(t, advGUN).RootKeyIDs()}
				}
			})
			e.pull = func(tag string) {
				t.Helper()
				if _, err := lookup(t, c, advGUN, tag); err != nil {
					t.Fatalf("pull of %s: %v", tag, err)
				}
			}
			if tc.pulled {
				e.pull("v1")
			}
			if tc.then != nil {
				tc.then(t, e)
			}
			tag := tc.tag
			if tag == "" {
				tag = "v1"
			}
			_, err := lookup(t, c, advGUN, tag)
			got := http.StatusOK
			switch {
			case resolver.IsNotSigned(err):
				got = http.StatusNotFound
			case err != nil:
				got = http.StatusServiceUnavailable
			}
			t.Logf("%d: %v", got, err)
			if got != row.status {
				t.Errorf("status %d (%v), docs say %d", got, err, row.status)
			}
			if len(row.errs) == 0 && err != nil {
				t.Errorf("error %v, docs say it resolves", err)
			}
			for _, name := range row.errs {
				if !errors.Is(err, sentinels[name]) {
					t.Errorf("error %v is not %s", err, name)
				}
			}
		})
	}
	for name := range doc {
		if !tested[name] {
			t.Errorf("docs/trust.md row %q has no test case", name)
		}
	}
}
