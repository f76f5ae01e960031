package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// errRedirectRefused: an upstream redirected trustgate somewhere it may not go.
var errRedirectRefused = errors.New("redirect refused")

// maxRedirects is net/http's own default; a longer chain is a loop or an attack.
const maxRedirects = 10

// redirectPolicy is the CheckRedirect of every upstream client. Upstreams legitimately redirect
// (Docker Hub sends blobs to a CDN), and on-premises registries and their storage live on private
// addresses, so private ranges stay allowed. What an upstream may not do is point trustgate at the
// machine it runs on or at link-local services (cloud metadata at 169.254.169.254, fe80::/10):
// in warn and off modes the bytes would be relayed to the client unverified, which makes trustgate
// a request forwarder into its own host. Loopback is allowed only when the upstream itself is on
// loopback (a test or a sidecar registry). Names are resolved here and every address they resolve
// to must pass; a name that resolves differently at dial time (DNS rebinding) is not caught, which
// is documented in the README's limitations.
type redirectPolicy struct {
	upstreamLoopback bool
	resolve          func(ctx context.Context, host string) ([]netip.Addr, error)
}

func newRedirectPolicy(upstreamHost string) *redirectPolicy {
	p := &redirectPolicy{resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}}
	if host := upstreamHost; host == "localhost" {
		p.upstreamLoopback = true
	} else if a, err := netip.ParseAddr(host); err == nil && a.Unmap().IsLoopback() {
		p.upstreamLoopback = true
	}
	return p
}

// check is an http.Client CheckRedirect.
func (p *redirectPolicy) check(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", errRedirectRefused, maxRedirects)
	}
	u := req.URL
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q", errRedirectRefused, u.Scheme)
	}
	if len(via) > 0 && via[0].URL.Scheme == "https" && u.Scheme != "https" {
		return fmt.Errorf("%w: from https to plain http", errRedirectRefused)
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		var rerr error
		if addrs, rerr = p.resolve(req.Context(), host); rerr != nil {
			return fmt.Errorf("%w: resolving %s: %v", errRedirectRefused, host, rerr)
		}
	}
	for _, a := range addrs {
		if why := p.forbidden(a.Unmap()); why != "" {
			return fmt.Errorf("%w: %s is %s", errRedirectRefused, host, why)
		}
	}
	return nil
}

func (p *redirectPolicy) forbidden(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "an unspecified address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local (cloud metadata lives there)"
	case a.IsMulticast():
		return "multicast"
	case a.IsLoopback() && !p.upstreamLoopback:
		return "loopback and the upstream is not"
	}
	return ""
}
