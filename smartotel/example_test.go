package smartotel_test

import (
	"fmt"
	"log"
	"time"

	"github.com/alexedwards/scs/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/smartotel"
)

// New's Observer is the Refresher's Config.Observer. The providers are
// the app's (from the OTel SDK, say); here the global ones.
func ExampleNew() {
	observer, err := smartotel.New(smartotel.Config{
		MeterProvider:  otel.GetMeterProvider(),
		TracerProvider: otel.GetTracerProvider(),
	})
	if err != nil {
		log.Fatal(err)
	}
	r, err := core.New(core.HealthGorillaSandbox.Config(core.Config{
		ClientID:     "my-client-id",
		ClientSecret: "my-client-secret",
		Sessions:     scs.New(),
		Observer:     observer,
		// The app's own hooks keep working beside the Observer.
		OnReauth: func(i core.ReauthInfo) { log.Print("smartrefresh: re-authorization required: ", i.Reason) },
	}))
	fmt.Println(r != nil, err)
	// Output: true <nil>
}

// A refresh of an expired token, as the Observer records it: the metrics
// and the span, here from a recording provider that prints its data
// points.
func Example() {
	rec := newRecorder() // the app's MeterProvider and TracerProvider
	observer, err := smartotel.New(smartotel.Config{MeterProvider: rec, TracerProvider: rec})
	if err != nil {
		log.Fatal(err)
	}
	a, err := newApp(core.Config{Observer: observer})
	if err != nil {
		log.Fatal(err)
	}
	defer a.close()
	a.clock.Advance(time.Hour) // the access token expired
	fmt.Println("GET /:", a.get("/"))
	fmt.Println("smartrefresh.refreshes{outcome=success,rotated=true}:", rec.sum("smartrefresh.refreshes{outcome=success,rotated=true}"))
	fmt.Println("smartrefresh.refresh.duration{outcome=success} values:", rec.counts["smartrefresh.refresh.duration{outcome=success}"])
	for _, s := range rec.ended() {
		attrs := attribute.NewSet(s.attrs...)
		fmt.Println("span", s.name, s.kind, attrs.Encoded(attribute.DefaultEncoder()))
	}
	// Output:
	// GET /: 200
	// smartrefresh.refreshes{outcome=success,rotated=true}: 1
	// smartrefresh.refresh.duration{outcome=success} values: 1
	// span smartrefresh.refresh client smartrefresh.outcome=success,smartrefresh.rotated=true,smartrefresh.shared=1
}
