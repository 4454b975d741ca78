// Command gin is the smartrefresh demo on Gin: a SMART on FHIR app whose
// access token stays valid for as long as the session lives.
//
//	go run ./examples/gin            # with the embedded mock SMART server
//	go run ./examples/gin -help      # flags for a real server
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/gin-gonic/gin"

	"github.com/smartrefresh/smartrefresh/examples/internal/demo"
	"github.com/smartrefresh/smartrefresh/ginadapter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	gin.SetMode(gin.ReleaseMode)
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	return demo.Run(ctx, "Gin", args, stdout, newHandler)
}

// newHandler wires the app's routes. The /api group needs a valid token:
// the smartrefresh middleware provides it, or answers 401 JSON.
func newHandler(app *demo.App) http.Handler {
	router := gin.New()
	router.Use(gin.Recovery())
	router.SetHTMLTemplate(demo.Templates)
	router.SetTrustedProxies(nil)

	router.GET("/", func(c *gin.Context) {
		c.HTML(http.StatusOK, demo.HomeTemplate, app.Home(c.Request))
	})
	// The library's SMART launch: EHR (?iss=…&launch=…) and standalone.
	router.GET("/launch", gin.WrapH(app.Launcher.LaunchHandler()))
	router.GET("/callback", gin.WrapH(app.Launcher.CallbackHandler()))
	router.POST("/logout", func(c *gin.Context) {
		if err := app.Logout(c.Request.Context(), c.PostForm("csrf"), c.PostForm(demo.LaunchField)); err != nil {
			c.JSON(demo.ErrorResponse(err))
			return
		}
		c.Redirect(http.StatusSeeOther, "/")
	})
	router.Any(demo.ProxyPrefix+"*path", gin.WrapH(app.FHIRProxy)) // the page's FHIR calls, with the session's token
	if app.Metrics != nil {
		router.GET("/metrics", gin.WrapH(app.Metrics))
	}

	api := router.Group("/api", ginadapter.Middleware(app.Refresher))
	api.GET("/patient", func(c *gin.Context) {
		patient, err := app.Patient(c.Request.Context())
		if err != nil {
			app.LogError(c.Request.Context(), "fetching the patient", err)
			c.JSON(demo.ErrorResponse(err))
			return
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", patient)
	})
	api.GET("/token", func(c *gin.Context) {
		view, err := app.Token(c.Request.Context())
		if err != nil {
			c.JSON(demo.ErrorResponse(err))
			return
		}
		c.JSON(http.StatusOK, view)
	})

	// scs wraps the whole engine: it loads the session before Gin runs and
	// writes its cookie before the first byte of the answer.
	return app.Sessions.LoadAndSave(router)
}
