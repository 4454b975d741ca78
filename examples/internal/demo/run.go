package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// LaunchPatients are the patients the embedded mock server's EHR hands
// out by launch value: /launch?iss=<FHIR base>&launch=ehr-456 logs in for
// patient 456, as an EHR would for the patient open in it. Other launches
// get patient 123, Amy V. Shaw.
var LaunchPatients = map[string]string{"ehr-123": "123", "ehr-456": "456"}

// StartMock starts the embedded mock SMART server for cfg (its client, its
// registered redirect URI cfg.RedirectURL, without which the mock refuses
// every authorization request, and access tokens living cfg.TokenTTL) on a
// loopback port, and points cfg's
// endpoints at it: the revocation endpoint is its RFC 7009 RevokeURL, or
// its CancelURL (GET ?token=…) when cfg.RevokeStyle is core.RevokeQueryGET.
// now is its clock (time.Now when nil). The caller closes the server.
func StartMock(cfg *Config, now func() time.Time) *smarttest.Server {
	opts := smarttest.Options{
		ClientID:       cfg.ClientID,
		ClientSecret:   cfg.ClientSecret,
		AuthMethod:     cfg.AuthMethod(),
		AccessTokenTTL: cfg.TokenTTL,
		LaunchPatients: LaunchPatients,
		Now:            now,
	}
	if cfg.RedirectURL != "" {
		opts.RedirectURIs = []string{cfg.RedirectURL}
	}
	if cfg.PrivateKey != nil {
		opts.ClientPublicKey, opts.ClientKeyID = cfg.PrivateKey.Public(), cfg.KeyID
	}
	srv := smarttest.NewServer(opts)
	cfg.mock = true
	cfg.TokenURL = srv.TokenURL
	cfg.AuthorizeURL = srv.AuthorizeURL
	cfg.FHIRBase = srv.FHIRBaseURL
	cfg.RevokeURL = srv.RevokeURL
	if cfg.RevokeStyle == core.RevokeQueryGET {
		cfg.RevokeURL = srv.CancelURL
	}
	return srv
}

// Run is the body of each example's main: it parses args, starts the
// embedded mock server unless a real one is configured, builds the App and
// serves handler(app) until ctx is done, then shuts down gracefully. It
// prints the app's URL and its logs to stdout.
func Run(ctx context.Context, name string, args []string, stdout io.Writer, handler func(*App) http.Handler) error {
	cfg, err := ParseFlags(name, args, os.Getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stdout, nil))

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	appURL := "http://" + publicAddr(ln.Addr())
	if cfg.RedirectURL == "" {
		cfg.RedirectURL = appURL + "/callback"
	}

	if cfg.Embedded() {
		mock := StartMock(&cfg, nil)
		defer mock.Close()
		fmt.Fprintf(stdout, "Using the embedded mock SMART server at %s (access tokens live %s).\n", mock.URL, cfg.TokenTTL)
	} else {
		fmt.Fprintf(stdout, "Using the SMART server of %s (client %s, %s).\n", cfg.FHIRBase, cfg.ClientID, cfg.AuthMethod())
		switch {
		case cfg.TokenURL == "":
			fmt.Fprintln(stdout, "Endpoints not given are read from the server's .well-known/smart-configuration.")
		case cfg.RevokeURL == "":
			fmt.Fprintln(stdout, "No -revoke-url: Log out only clears the session.")
		}
	}

	shared, err := OpenShared(ctx, cfg)
	if err != nil {
		return err
	}
	defer shared.Close()
	opts := Options{Name: name, Logger: logger}
	if shared != nil {
		opts.Store, opts.Coordinator = shared.Store, shared.Coordinator
		fmt.Fprintf(stdout, "Sessions and refreshes shared with the other replicas through %s.\n", shared.Name)
		if cfg.Embedded() {
			fmt.Fprintln(stdout, "The embedded mock server belongs to this process: give every replica the same -token-url, -authorize-url and -fhir-base.")
		}
	}
	app, err := New(cfg, opts)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := app.Close(closeCtx); err != nil {
			logger.Warn("closing the app", "error", err)
		}
	}()
	if app.Metrics != nil {
		fmt.Fprintf(stdout, "Prometheus metrics at %s/metrics\n", appURL)
	}
	srv := &http.Server{
		Handler:           handler(app),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "%s demo listening on %s\n", name, appURL)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// publicAddr is addr as a browser can reach it: an unspecified host
// (":8080", "0.0.0.0:8080") becomes localhost.
func publicAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
