package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/reference"
)

// repoRef is a request's repository after upstream selection and name mapping.
type repoRef struct {
	up   *upstream
	repo string // the repository name upstream, e.g. "library/alpine"
	gun  string // the Notary GUN and the name policy decides on, e.g. "docker.io/library/alpine"
}

// validDomain is a placeholder registry host: reference's grammar validates a full name, so the
// repository path is checked as "<validDomain>/<path>", which forces every segment of path to be
// a path component (lowercase, no port, no domain).
const validDomain = "trustgate.invalid"

// locate picks the upstream for a request and maps the name the client used to the upstream's
// repository. Precedence: containerd's ?ns=, then a path prefix naming an upstream, then the
// configured default. Only configured upstreams are ever selected, so no request can make
// trustgate dial a host of the client's choosing.
func (s *Server) locate(r *http.Request, name string) (repoRef, error) {
	segs := strings.Split(name, "/")
	var up *upstream
	if ns, ok := r.URL.Query()["ns"]; ok {
		if len(ns) != 1 || ns[0] == "" {
			return repoRef{}, newError(errcode.ErrorCodeNameInvalid, "ns must be given once and be non-empty")
		}
		up = s.upstreams[ns[0]]
		if up == nil {
			return repoRef{}, newError(errcode.ErrorCodeNameUnknown, "registry %s (ns) is not an upstream of this trustgate", echo(ns[0]))
		}
		// A client with a path-prefixed mirror (containerd override_path) that also adds ns
		// sends /v2/<ns>/<repo>?ns=<ns>; the prefix is the same upstream, so drop it. A prefix
		// naming a different upstream is a contradiction, not a repository name.
		if len(segs) > 1 {
			if other := s.upstreams[segs[0]]; other == up {
				segs = segs[1:]
			} else if other != nil {
				return repoRef{}, newError(errcode.ErrorCodeNameInvalid, "path prefix %s contradicts ns=%s", echo(segs[0]), echo(ns[0]))
			}
		}
	} else if p := s.upstreams[segs[0]]; p != nil && len(segs) > 1 {
		up, segs = p, segs[1:]
	} else if s.def != nil {
		up = s.def
	} else {
		return repoRef{}, newError(errcode.ErrorCodeNameUnknown, "no upstream selected: use ?ns=<registry> or /v2/<registry>/<repository>; configured: %s", s.upstreamNames())
	}
	if up.cfg.DockerHub && len(segs) == 1 {
		segs = []string{"library", segs[0]}
	}
	repo := strings.Join(segs, "/")
	if err := validateRepo(repo); err != nil {
		return repoRef{}, err
	}
	return repoRef{up: up, repo: repo, gun: up.gunPrefix + "/" + repo}, nil
}

func validateRepo(repo string) error {
	if len(repo) > reference.RepositoryNameTotalLengthMax {
		return newError(errcode.ErrorCodeNameInvalid, "repository name longer than %d characters", reference.RepositoryNameTotalLengthMax)
	}
	n, err := reference.WithName(validDomain + "/" + repo)
	if err != nil || reference.Domain(n) != validDomain || reference.Path(n) != repo {
		return newError(errcode.ErrorCodeNameInvalid, "invalid repository name %s", echo(repo))
	}
	return nil
}

func (s *Server) upstreamNames() string {
	var names []string
	for n := range s.upstreams {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Locate maps a repository name as a client sends it, with containerd's ns ("" for none), to the
// upstream's name, the repository there and the GUN, exactly as a request is mapped. It is for
// tools that must agree with the proxy on names (trustgate resolve).
func (s *Server) Locate(ns, name string) (upstream, repo, gun string, err error) {
	r := &http.Request{URL: &url.URL{}}
	if ns != "" {
		r.URL.RawQuery = url.Values{"ns": {ns}}.Encode()
	}
	ref, err := s.locate(r, name)
	if err != nil {
		return "", "", "", err
	}
	return ref.up.cfg.Name, ref.repo, ref.gun, nil
}
