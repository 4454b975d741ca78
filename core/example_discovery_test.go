package core_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

func ExampleDiscover() {
	srv := smarttest.NewServer(smarttest.Options{})
	defer srv.Close()

	conf, err := core.Discover(context.Background(), srv.FHIRBaseURL)
	if err != nil {
		log.Fatal(err)
	}
	if err := conf.Check(core.ClientSecretPost); err != nil {
		log.Fatal(err)
	}
	cfg := conf.Config(core.Config{
		ClientID:     "smart-client",
		ClientSecret: "smart-secret",
		AuthMethod:   core.ClientSecretPost,
		Sessions:     scs.New(),
	})
	r, err := core.New(cfg)
	fmt.Println(strings.TrimPrefix(cfg.TokenURL, srv.URL), strings.TrimPrefix(cfg.RevocationURL, srv.URL), r != nil, err)
	// Output: /token /revoke true <nil>
}

func ExampleDiscoverer() {
	srv := smarttest.NewServer(smarttest.Options{})
	defer srv.Close()

	// One Discoverer for the app: documents are cached (Cache-Control
	// max-age, else TTL) and concurrent look-ups share one fetch.
	d := &core.Discoverer{TTL: 10 * time.Minute, Timeout: 5 * time.Second}
	conf, err := d.Discover(context.Background(), srv.FHIRBaseURL)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(slices.Contains(conf.Capabilities, "permission-offline"))

	_, err = d.Discover(context.Background(), srv.URL+"/nowhere")
	var de *core.DiscoveryError
	fmt.Println(errors.As(err, &de), de.StatusCode, errors.Is(err, core.ErrMisconfigured))
	// Output:
	// true
	// true 404 true
}

func ExampleParseSMARTConfiguration() {
	doc := []byte(`{
		"issuer": "https://ehr.example.com",
		"authorization_endpoint": "https://ehr.example.com/auth/authorize",
		"token_endpoint": "https://ehr.example.com/auth/token",
		"revocation_endpoint": "https://ehr.example.com/auth/revoke",
		"token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
		"grant_types_supported": ["authorization_code", "refresh_token"],
		"code_challenge_methods_supported": ["S256"],
		"capabilities": ["launch-ehr", "client-confidential-symmetric", "permission-offline"],
		"management_endpoint": "https://ehr.example.com/user/manage"
	}`)
	conf, err := core.ParseSMARTConfiguration(doc)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(conf.TokenEndpoint)
	fmt.Println(conf.Supports(core.PrivateKeyJWT), conf.Supports(core.ClientSecretPost))
	fmt.Println(conf.Extra["management_endpoint"])

	_, err = core.ParseSMARTConfiguration([]byte(`{"token_endpoint": "http://ehr.example.com/token"}`))
	fmt.Println(err)
	// Output:
	// https://ehr.example.com/auth/token
	// true false
	// https://ehr.example.com/user/manage
	// smartrefresh: SMART configuration: token_endpoint must use https (plain http is allowed only on loopback)
}

func ExampleSMARTConfiguration_Check() {
	conf, err := core.ParseSMARTConfiguration([]byte(`{
		"token_endpoint": "https://ehr.example.com/token",
		"token_endpoint_auth_methods_supported": ["client_secret_basic"],
		"code_challenge_methods_supported": ["plain"]
	}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(conf.Check(core.ClientSecretPost))
	// Output:
	// smartrefresh: SMART configuration: token_endpoint_auth_methods_supported [client_secret_basic] lacks client_secret_post
	// smartrefresh: SMART configuration: code_challenge_methods_supported [plain] lacks S256
}

func ExampleSMARTConfiguration_Config() {
	conf, err := core.ParseSMARTConfiguration([]byte(`{
		"token_endpoint": "https://ehr.example.com/token",
		"revocation_endpoint": "https://ehr.example.com/revoke",
		"token_endpoint_auth_methods_supported": ["client_secret_basic"]
	}`))
	if err != nil {
		log.Fatal(err)
	}
	cfg := conf.Config(core.Config{
		ClientID:     "my-client-id",
		ClientSecret: "from-the-environment",
		AuthMethod:   core.ClientSecretPost, // the server does not list it
		Sessions:     scs.New(),
	})
	fmt.Println(cfg.TokenURL, cfg.RevocationURL)
	_, err = core.New(cfg)
	var ce *core.ConfigError
	fmt.Println(errors.As(err, &ce), ce.Field)
	// Output:
	// https://ehr.example.com/token https://ehr.example.com/revoke
	// true AuthMethod
}

func ExamplePreset_Config() {
	cfg := core.HealthGorillaSandbox.Config(core.Config{
		ClientID:     "my-client-id",
		ClientSecret: os.Getenv("HG_CLIENT_SECRET"),
		AuthMethod:   core.ClientSecretPost, // as Health Gorilla documents
		Sessions:     scs.New(),
	})
	fmt.Println(cfg.TokenURL)
	fmt.Println(cfg.AuthMethod, cfg.RevocationURL, cfg.RevocationStyle)
	fmt.Println(core.HealthGorillaSandbox.FHIRBaseURL)

	// Their refresh guide writes /oauth2/token: a TokenURL set in the base
	// wins.
	cfg = core.HealthGorillaProduction.Config(core.Config{TokenURL: "https://api.healthgorilla.com/oauth2/token"})
	fmt.Println(cfg.TokenURL)
	// Output:
	// https://sandbox.healthgorilla.com/oauth/token
	// client_secret_post https://sandbox.healthgorilla.com/oauth/cancel RevokeQueryGET
	// https://sandbox.healthgorilla.com/fhir/R4
	// https://api.healthgorilla.com/oauth2/token
}

func ExampleSMARTConfiguration_Supports() {
	// Without token_endpoint_auth_methods_supported, the SMART capabilities
	// tell which kinds of client the server takes.
	conf, err := core.ParseSMARTConfiguration([]byte(`{
		"token_endpoint": "https://ehr.example.com/token",
		"capabilities": ["client-public", "client-confidential-asymmetric"]
	}`))
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range []core.AuthMethod{core.None, core.ClientSecretBasic, core.PrivateKeyJWT} {
		fmt.Println(m, conf.Supports(m))
	}
	// Output:
	// none true
	// client_secret_basic false
	// private_key_jwt true
}
