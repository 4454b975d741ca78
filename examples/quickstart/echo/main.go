// Command echo is the quick start on Echo v4: go run ./examples/quickstart/echo, open
// http://127.0.0.1:8080/. Offline on a mock SMART server unless ../main.go's settings are set.
package main

import (
	"log/slog"
	"net/http"
	"net/url"
	"os"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"
	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
	"github.com/smartrefresh/smartrefresh/echoadapter"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	origin := "http://127.0.0.1:8080" // plain http: loopback only
	fhirBase, tokenURL, authorizeURL := os.Getenv("SMART_FHIR_BASE"), os.Getenv("SMART_TOKEN_URL"), os.Getenv("SMART_AUTHORIZE_URL")
	clientID, secret := os.Getenv("SMART_CLIENT_ID"), os.Getenv("SMART_CLIENT_SECRET")
	if fhirBase == "" { // offline: a strict mock SMART server in this process
		mock := smarttest.NewServer(smarttest.Options{RedirectURIs: []string{origin + "/callback"}})
		fhirBase, tokenURL, authorizeURL, clientID, secret = mock.FHIRBaseURL, mock.TokenURL, mock.AuthorizeURL, "smart-client", "smart-secret"
	}
	sessions := scs.New() // set sessions.Cookie.Secure = true behind https
	r, err := core.New(core.Config{TokenURL: tokenURL, ClientID: clientID, ClientSecret: secret,
		AuthMethod: core.ClientSecretPost, Sessions: sessions, FHIRBaseURLs: []string{fhirBase}, Logger: logger})
	check(logger, err)
	launcher, err := core.NewLauncher(r, core.LaunchConfig{RedirectURL: origin + "/callback", FHIRBaseURL: fhirBase,
		Scope: "launch/patient patient/*.read openid fhirUser offline_access", AuthorizeURL: authorizeURL})
	check(logger, err)
	e := echo.New()
	e.GET("/launch", echo.WrapHandler(launcher.LaunchHandler()))
	e.GET("/callback", echo.WrapHandler(launcher.CallbackHandler()))
	e.GET("/", func(c echo.Context) error {
		info, err := r.Info(c.Request().Context()) // the request's context carries the session
		var resp *http.Response
		if err == nil {
			resp, err = r.Client(c.Request().Context()).Get(fhirBase + "/Patient/" + url.PathEscape(info.Patient))
		}
		if err != nil {
			core.WriteError(c.Response(), c.Request(), err) // 401 launch again, 503 try later, 500 misconfigured
			return nil
		}
		defer resp.Body.Close()
		return c.Stream(resp.StatusCode, "application/fhir+json", resp.Body)
	}, echoadapter.Middleware(r, echoadapter.WithLoginURL("/launch")))
	logger.Info("open " + origin + "/")
	check(logger, http.ListenAndServe("127.0.0.1:8080", sessions.LoadAndSave(e))) // LoadAndSave wraps the whole engine
}

// check ends the program on an error.
func check(logger *slog.Logger, err error) {
	if err != nil {
		logger.Error("quickstart", "error", err)
		os.Exit(1)
	}
}
