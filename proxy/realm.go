package proxy

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// checkRealm refuses to hand trustgate's upstream credentials to a token realm outside the
// upstream's own domain. ggcr's token exchange goes wherever the registry's WWW-Authenticate points,
// so without this a compromised or spoofed upstream could collect the configured password (the
// same rule distribution v3.1 added to its proxy). Allowed: the upstream host itself, its
// subdomains, and — for a host of three or more labels such as registry-1.docker.io — hosts under
// its parent domain (auth.docker.io). Anonymous upstreams are not checked: they have nothing to leak.
func (u *upstream) checkRealm(ctx context.Context) error {
	if u.auth == nil || (u.cfg.Username == "" && u.cfg.Password == "") {
		return nil
	}
	ch, err := transport.Ping(ctx, u.reg, u.base)
	if err != nil {
		return err
	}
	if !strings.EqualFold(ch.Scheme, "bearer") {
		return nil
	}
	realm, err := url.Parse(ch.Parameters["realm"])
	if err != nil || realm.Hostname() == "" {
		return fmt.Errorf("token realm %q is not a URL", ch.Parameters["realm"])
	}
	if !realmAllowed(u.cfg.URL.Hostname(), realm.Hostname()) {
		return fmt.Errorf("token realm host %q is outside %q: %w", realm.Hostname(), u.cfg.URL.Hostname(), errCredentialsWithheld)
	}
	return nil
}

func realmAllowed(upstreamHost, realmHost string) bool {
	up, realm := strings.ToLower(upstreamHost), strings.ToLower(realmHost)
	if up == realm || strings.HasSuffix(realm, "."+up) {
		return true
	}
	if net.ParseIP(up) != nil {
		return false
	}
	labels := strings.Split(up, ".")
	if len(labels) < 3 {
		return false
	}
	parent := strings.Join(labels[1:], ".")
	return realm == parent || strings.HasSuffix(realm, "."+parent)
}
