// Command nethttp is the smartrefresh demo on the standard library's
// net/http: a SMART on FHIR app whose access token stays valid for as long
// as the session lives.
//
//	go run ./examples/nethttp            # with the embedded mock SMART server
//	go run ./examples/nethttp -help      # flags for a real server
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/smartrefresh/smartrefresh/examples/internal/demo"
	"github.com/smartrefresh/smartrefresh/nethttpadapter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nethttp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	return demo.Run(ctx, "net/http", args, stdout, newHandler)
}

// newHandler wires the app's routes. The API routes need a valid token:
// the smartrefresh middleware provides it, or answers 401 JSON.
func newHandler(app *demo.App) http.Handler {
	withToken := nethttpadapter.Middleware(app.Refresher)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := demo.Templates.ExecuteTemplate(w, demo.HomeTemplate, app.Home(r)); err != nil {
			app.LogError(r.Context(), "rendering the home page", err)
		}
	})
	// The library's SMART launch: EHR (?iss=…&launch=…) and standalone.
	mux.Handle("GET /launch", app.Launcher.LaunchHandler())
	mux.Handle("GET /callback", app.Launcher.CallbackHandler())
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := app.Logout(r.Context(), r.PostFormValue("csrf"), r.PostFormValue(demo.LaunchField)); err != nil {
			demo.WriteError(w, err)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.Handle("GET /api/patient", withToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		patient, err := app.Patient(r.Context())
		if err != nil {
			app.LogError(r.Context(), "fetching the patient", err)
			demo.WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(patient)
	})))
	mux.Handle("GET /api/token", withToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		view, err := app.Token(r.Context())
		if err != nil {
			demo.WriteError(w, err)
			return
		}
		demo.WriteJSON(w, http.StatusOK, view)
	})))
	mux.Handle(demo.ProxyPrefix, app.FHIRProxy) // the page's FHIR calls, with the session's token
	if app.Metrics != nil {
		mux.Handle("GET /metrics", app.Metrics)
	}

	// The session must be loaded before any route, and saved after it.
	return app.Sessions.LoadAndSave(mux)
}
