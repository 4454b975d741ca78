package smarttest_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// TestLoginFailsWhenTheAppRefuses (issue 19 item 15): an app whose callback
// refuses the login and redirects (its error handler sends the browser to
// an error page or back to the launch) is a failed Login, not a success.
func TestLoginFailsWhenTheAppRefuses(t *testing.T) {
	app := httptest.NewUnstartedServer(nil)
	appURL := "http://" + app.Listener.Addr().String()
	s := smarttest.NewServer(smarttest.Options{RedirectURIs: []string{appURL + "/callback"}})
	defer s.Close()
	_, challenge := pkce()
	mux := http.NewServeMux()
	mux.HandleFunc("/launch", func(w http.ResponseWriter, r *http.Request) {
		q := authorizeQuery(s, challenge)
		q.Set("redirect_uri", appURL+"/callback")
		http.Redirect(w, r, s.AuthorizeURL+"?"+q.Encode(), http.StatusFound)
	})
	var where string
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		// The app's error handler: no code exchange, a redirect.
		http.Redirect(w, r, where, http.StatusSeeOther)
	})
	app.Config.Handler = mux
	app.Start()
	defer app.Close()
	for _, where = range []string{"/?error=invalid_state", "/launch", "/home"} {
		landing, err := s.Login(smarttest.NewBrowser(), appURL+"/launch")
		t.Logf("callback redirecting to %s without exchanging the code: Login = %q, %v", where, landing, err)
		if err == nil || !strings.Contains(err.Error(), "smarttest: Login") {
			t.Errorf("Login succeeded although the app refused the login (redirect to %s)", where)
		}
	}
}
