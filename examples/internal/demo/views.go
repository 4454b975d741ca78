package demo

import (
	_ "embed"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

//go:embed home.html
var homeHTML string

// HomeTemplate is the name of the home page template in Templates.
const HomeTemplate = "home.html"

// Templates holds the home page template, named HomeTemplate, for
// template.Execute, echo.TemplateRenderer or gin's SetHTMLTemplate.
var Templates = template.Must(template.New(HomeTemplate).Parse(homeHTML))

// HomeView is the data of the home page.
type HomeView struct {
	Framework string
	Embedded  bool // using the embedded mock server
	Revokes   bool // Log out revokes the grant at a revocation endpoint
	LoggedIn  bool

	PatientID string
	// Launch is the id of the tab's launch (the page keeps it in
	// sessionStorage and names it in every request), and LaunchGone says
	// that the launch the page named has ended: the tab must launch again.
	Launch     string
	LaunchGone bool
	// FHIRUser is who logged in (empty without a validated id_token), and
	// Server the FHIR server the token is for.
	FHIRUser string
	// FHIRUserPath is FHIRUser relative to the FHIR server, for the page's
	// script to read the user's name through the proxy; empty when the
	// user is on another server.
	FHIRUserPath string
	Server       string
	Scope        string
	ExpiresAt    time.Time // zero when the server did not say
	// ExpiresInMillis is the access token's remaining lifetime when the
	// page was made; the page counts it down.
	ExpiresInMillis int64
	Refreshes       int
	LastRefresh     *LastRefresh
	HasRefreshToken bool
	// CSRF is the session's CSRF token, for the logout form.
	CSRF string

	Error string
}

// Home gathers the home page of the launch req names (smart_launch): logged
// out, or the patient's name fetched from the FHIR server (which refreshes
// the token when it is due) and the token's expiry and refresh count.
func (a *App) Home(req *http.Request) HomeView {
	ctx := core.LaunchContext(req)
	v := HomeView{Framework: a.name, Embedded: a.embedded, Revokes: a.revokes}
	info, err := a.Refresher.Info(ctx)
	if err != nil {
		v.LaunchGone = errors.Is(err, core.ErrLaunchGone)
		if !errors.Is(err, core.ErrNoToken) {
			a.LogError(ctx, "reading the session's token", err)
			_, body := ErrorResponse(err)
			v.Error = body.ErrorDescription
		}
		return v
	}
	// The page's script reads the patient through the FHIR proxy; the page
	// itself only keeps the token fresh.
	_, err = a.Refresher.Token(ctx)
	if err != nil {
		a.LogError(ctx, "home page", err)
		_, body := ErrorResponse(err)
		v.Error = body.ErrorDescription
		if errors.Is(err, core.ErrReauthRequired) {
			return v // the token is gone: logged out
		}
	}
	if info, err = a.Refresher.Info(ctx); err != nil {
		return v
	}
	v.LoggedIn = true
	v.PatientID = info.Patient
	v.Launch = info.Launch
	v.FHIRUser = info.FHIRUser
	v.Server = info.FHIRBaseURL
	if v.Server == "" {
		v.Server = a.fhirBase
	}
	v.Scope = info.Scope
	v.ExpiresAt = info.Expiry
	if rest, ok := strings.CutPrefix(v.FHIRUser, strings.TrimRight(v.Server, "/")+"/"); ok {
		v.FHIRUserPath = rest
	}
	if !info.Expiry.IsZero() {
		v.ExpiresInMillis = max(info.Expiry.Sub(a.now()).Milliseconds(), 0)
	}
	v.Refreshes = info.Refreshes
	v.LastRefresh = a.rotations.lastRefresh(info)
	v.HasRefreshToken = info.HasRefreshToken
	v.CSRF = a.CSRFToken(ctx)
	return v
}
