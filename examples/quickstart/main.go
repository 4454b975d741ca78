// Command quickstart is the README's quick start, file for file: a SMART on
// FHIR app whose access token stays valid for as long as its session lives.
// With no settings it runs offline against core/smarttest; SMART_* variables
// point it at a real server (see the README).
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
	"github.com/smartrefresh/smartrefresh/nethttpadapter"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv, logger, os.Stdout); err != nil {
		logger.Error("quickstart", "error", err)
		os.Exit(1)
	}
}

// run serves the app until ctx ends.
func run(ctx context.Context, getenv func(string) string, logger *slog.Logger, out io.Writer) error {
	ln, err := net.Listen("tcp", cmp.Or(getenv("APP_ADDR"), "127.0.0.1:8080"))
	if err != nil {
		return err
	}
	origin := "http://" + ln.Addr().String() // plain http: loopback only

	fhirBase, tokenURL := getenv("SMART_FHIR_BASE"), getenv("SMART_TOKEN_URL")
	authorizeURL := getenv("SMART_AUTHORIZE_URL") // empty: read from fhirBase's .well-known/smart-configuration
	clientID, secret := getenv("SMART_CLIENT_ID"), getenv("SMART_CLIENT_SECRET")
	if fhirBase == "" { // offline: a strict mock SMART server in this process
		mock := smarttest.NewServer(smarttest.Options{RedirectURIs: []string{origin + "/callback"}})
		defer mock.Close()
		fhirBase, tokenURL, authorizeURL = mock.FHIRBaseURL, mock.TokenURL, mock.AuthorizeURL
		clientID, secret = "smart-client", "smart-secret" // the mock's one client
		logger.Info("no SMART_FHIR_BASE: using an in-process mock SMART server", "url", mock.URL)
	}

	sessions := scs.New()          // in memory; any scs store works (see docs/replicas.md for several processes)
	sessions.Cookie.Secure = false // plain http on loopback; leave it true behind https
	r, err := core.New(core.Config{
		TokenURL:     tokenURL,
		ClientID:     clientID,
		ClientSecret: secret,
		AuthMethod:   core.ClientSecretPost, // or ClientSecretBasic, None, PrivateKeyJWT
		Sessions:     sessions,
		FHIRBaseURLs: []string{fhirBase}, // the token goes nowhere else
		Logger:       logger,
	})
	if err != nil {
		return err
	}
	launcher, err := core.NewLauncher(r, core.LaunchConfig{
		RedirectURL:  origin + "/callback", // registered at the server, exactly
		Scope:        "launch/patient patient/*.read openid fhirUser offline_access",
		FHIRBaseURL:  fhirBase,
		AuthorizeURL: authorizeURL,
	})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /launch", launcher.LaunchHandler())     // EHR (?iss=…&launch=…) and standalone
	mux.Handle("GET /callback", launcher.CallbackHandler()) // checks state, exchanges the code, saves the token
	needsLogin := nethttpadapter.Middleware(r, nethttpadapter.WithLoginURL("/launch"))
	mux.Handle("GET /{$}", needsLogin(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		info, err := r.Info(req.Context()) // patient, fhirUser, expiry, …: never a secret
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		resp, err := r.Client(req.Context()).Get(fhirBase + "/Patient/" + url.PathEscape(info.Patient))
		if err != nil {
			core.WriteError(w, req, err) // 401 launch again, 503 try later, 500 misconfigured
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})))

	srv := &http.Server{Handler: oneOrigin(origin, sessions.LoadAndSave(mux))}
	go func() { <-ctx.Done(); srv.Close() }()
	fmt.Fprintf(out, "open %s/ in a browser\n", origin)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// oneOrigin sends a request that reached the app under another name (say
// localhost for 127.0.0.1) to origin before anything else: the session
// cookie belongs to one host name, and the server returns the browser to
// the RedirectURL's.
func oneOrigin(origin string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if "http://"+req.Host != origin {
			http.Redirect(w, req, origin+req.URL.RequestURI(), http.StatusTemporaryRedirect)
			return
		}
		next.ServeHTTP(w, req)
	})
}
