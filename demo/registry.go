package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory" // registers "inmemory"
	"github.com/sirupsen/logrus"
)

// loopback is a started http.Server on a loopback port the kernel chose.
type loopback struct {
	srv  *http.Server
	addr string // host:port
	done chan error
}

func listenLoopback(h http.Handler) (*loopback, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &loopback{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan error, 1),
	}
	go func() { l.done <- l.srv.Serve(ln) }()
	return l, nil
}

func (l *loopback) URL() string { return "http://" + l.addr }

// close stops the server at once, closing every connection. By the time the demo closes its
// registry and trust server, trustgate has stopped and nothing is in flight; waiting for
// graceful shutdown would instead wait out connections that a client dialled and never used
// (net/http gives those five seconds).
func (l *loopback) close() error {
	err := l.srv.Close()
	if serr := <-l.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// newRegistry is distribution v3's registry application — the reference implementation that
// `registry serve` runs — with in-memory storage: nothing touches the disk and everything is
// gone when the process ends. Its upload purger is off (it would only wake up a day later) and
// the HTTP secret is random (it signs upload state, which never outlives this process).
//
// distribution logs through logrus' standard logger: every request at info level and every 404
// at error level (a push asks for each blob before uploading it, so each push logs several). The
// demo turns that process-wide logger down to fatal so its output is trustgate's; a registry
// failure that matters still shows there, as the upstream error trustgate logs.
func newRegistry(ctx context.Context) (*handlers.App, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"inmemory":    configuration.Parameters{},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	cfg.HTTP.Secret = hex.EncodeToString(secret)
	logrus.SetLevel(logrus.FatalLevel)
	var app *handlers.App
	err := func() (err error) {
		// NewApp panics on configuration it cannot use; the configuration above is fixed, but a
		// panic must still not take the process down without saying why.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("distribution registry: %v", r)
			}
		}()
		app = handlers.NewApp(ctx, cfg)
		return nil
	}()
	return app, err
}
