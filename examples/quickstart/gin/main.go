// Command gin is the quick start on Gin: go run ./examples/quickstart/gin, open
// http://127.0.0.1:8080/. Offline on a mock SMART server unless ../main.go's settings are set.
package main

import (
	"log/slog"
	"net/http"
	"net/url"
	"os"

	"github.com/alexedwards/scs/v2"
	"github.com/gin-gonic/gin"
	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
	"github.com/smartrefresh/smartrefresh/ginadapter"
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
	router := gin.New()
	router.GET("/launch", gin.WrapH(launcher.LaunchHandler()))
	router.GET("/callback", gin.WrapH(launcher.CallbackHandler()))
	router.GET("/", ginadapter.Middleware(r, ginadapter.WithLoginURL("/launch")), func(c *gin.Context) {
		info, err := r.Info(c.Request.Context()) // the request's context carries the session
		var resp *http.Response
		if err == nil { // r.Client(c) would compile, but a *gin.Context hides the session: the log says so
			resp, err = r.Client(c.Request.Context()).Get(fhirBase + "/Patient/" + url.PathEscape(info.Patient))
		}
		if err != nil {
			core.WriteError(c.Writer, c.Request, err) // 401 launch again, 503 try later, 500 misconfigured
			return
		}
		defer resp.Body.Close()
		c.DataFromReader(resp.StatusCode, -1, "application/fhir+json", resp.Body, nil)
	})
	logger.Info("open " + origin + "/")
	check(logger, http.ListenAndServe("127.0.0.1:8080", sessions.LoadAndSave(router))) // wraps the whole engine; not router.Run
}

// check ends the program on an error.
func check(logger *slog.Logger, err error) {
	if err != nil {
		logger.Error("quickstart", "error", err)
		os.Exit(1)
	}
}
