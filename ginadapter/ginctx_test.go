package ginadapter_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/ginadapter"
	"github.com/smartrefresh/smartrefresh/internal/adaptertest"
)

// lockedBuffer is a log destination the server's goroutines share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestGinContextMistakeIsLogged: a handler that passes the *gin.Context
// itself to Refresher.Client (instead of c.Request.Context()) on an engine
// without ContextWithFallback gets the 500 of a misconfiguration, and the
// Refresher's log says what went wrong and how to fix it.
func TestGinContextMistakeIsLogged(t *testing.T) {
	var logs lockedBuffer
	env := adaptertest.NewEnv(t)
	r, err := core.New(core.Config{
		TokenURL: env.Server.TokenURL, ClientID: "smart-client", ClientSecret: "smart-secret",
		AuthMethod: core.ClientSecretPost, Sessions: env.Sessions, Now: env.Clock.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	router := gin.New()
	router.GET("/login", login(env, r))
	router.GET("/patient", ginadapter.Middleware(r), func(c *gin.Context) {
		resp, err := r.Client(c).Get(env.Server.FHIRBaseURL + "/Patient/123") // the mistake
		if err != nil {
			core.WriteError(c.Writer, c.Request, err)
			return
		}
		resp.Body.Close()
		c.Status(resp.StatusCode)
	})
	env.URL = env.Serve(router)
	env.Login()
	code, _, _ := env.Get(env.URL, "/patient")
	if code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", code)
	}
	if got := logs.String(); !strings.Contains(got, "*gin.Context") || !strings.Contains(got, "c.Request.Context()") {
		t.Errorf("the log does not name the mistake and its fix:\n%s", got)
	}
}
