package proxy

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// dockerHubTokenRealm is Docker Hub's token service. An upstream marked docker_hub may send its
// credentials there without listing it in token_realms: registry-1.docker.io's 401 names it.
const dockerHubTokenRealm = "https://auth.docker.io"

// checkRealm refuses, with a message that says what to configure, an upstream whose token realm
// is outside the credentials' scope (package credscope: the upstream's own host, or a configured
// token realm). ggcr's token exchange goes wherever the registry's WWW-Authenticate points. This
// check reads the challenge once, before the exchange; the scope's guard under ggcr's transport
// (upstream.base) is what holds if a later challenge names another realm. Anonymous upstreams
// are not checked: they have nothing to leak.
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
	if !u.creds.Allows(realm) {
		return fmt.Errorf("token realm %s is not on %s's host (or is plain http) and not in token_realms: %w",
			realm.Redacted(), u.cfg.URL.Host, errCredentialsWithheld)
	}
	return nil
}
