// Command echo is the smartrefresh demo on Echo: a SMART on FHIR app whose
// access token stays valid for as long as the session lives.
//
//	go run ./examples/echo            # with the embedded mock SMART server
//	go run ./examples/echo -help      # flags for a real server
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/smartrefresh/smartrefresh/echoadapter"
	"github.com/smartrefresh/smartrefresh/examples/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	return demo.Run(ctx, "Echo", args, stdout, newHandler)
}

// newHandler wires the app's routes. The /api group needs a valid token:
// the smartrefresh middleware provides it, or answers 401 JSON.
func newHandler(app *demo.App) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Renderer = &echo.TemplateRenderer{Template: demo.Templates}
	e.Use(middleware.Recover())

	e.GET("/", func(c echo.Context) error {
		return c.Render(http.StatusOK, demo.HomeTemplate, app.Home(c.Request()))
	})
	// The library's SMART launch: EHR (?iss=…&launch=…) and standalone.
	e.GET("/launch", echo.WrapHandler(app.Launcher.LaunchHandler()))
	e.GET("/callback", echo.WrapHandler(app.Launcher.CallbackHandler()))
	e.POST("/logout", func(c echo.Context) error {
		if err := app.Logout(c.Request().Context(), c.Request().PostFormValue("csrf"), c.Request().PostFormValue(demo.LaunchField)); err != nil {
			return c.JSON(demo.ErrorResponse(err))
		}
		return c.Redirect(http.StatusSeeOther, "/")
	})
	e.Any(demo.ProxyPrefix+"*", echo.WrapHandler(app.FHIRProxy)) // the page's FHIR calls, with the session's token
	if app.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(app.Metrics))
	}

	api := e.Group("/api", echoadapter.Middleware(app.Refresher))
	api.GET("/patient", func(c echo.Context) error {
		patient, err := app.Patient(c.Request().Context())
		if err != nil {
			app.LogError(c.Request().Context(), "fetching the patient", err)
			return c.JSON(demo.ErrorResponse(err))
		}
		return c.JSONBlob(http.StatusOK, patient)
	})
	api.GET("/token", func(c echo.Context) error {
		view, err := app.Token(c.Request().Context())
		if err != nil {
			return c.JSON(demo.ErrorResponse(err))
		}
		return c.JSON(http.StatusOK, view)
	})

	// scs wraps the whole engine: it loads the session before Echo runs and
	// writes its cookie before the first byte of the answer.
	return app.Sessions.LoadAndSave(e)
}
