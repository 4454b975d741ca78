package core

// Preset holds the endpoints of one environment of a SMART platform, for
// platforms whose configuration is known in advance.
type Preset struct {
	// Name names the environment, for logs.
	Name string
	// BaseURL is the environment's origin.
	BaseURL string
	// AuthorizeURL is the authorization endpoint, for the app's own code
	// flow (Config does not use it).
	AuthorizeURL string
	// TokenURL is the token endpoint.
	TokenURL string
	// RevocationURL and RevocationStyle say how Logout revokes tokens.
	RevocationURL   string
	RevocationStyle RevocationStyle
	// FHIRBaseURL is the FHIR R4 base URL.
	FHIRBaseURL string
	// AuthMethod is the client authentication the platform documents.
	AuthMethod AuthMethod
}

// Config returns base with the preset's endpoints filled in where base
// leaves them empty: TokenURL, RevocationURL with RevocationStyle, and
// FHIRBaseURLs (the preset's FHIR base, so Client sends the token nowhere
// else).
// AuthMethod is filled in only for a base that sets a ClientSecret but no
// AuthMethod and no PrivateKey: it is the method the platform documents,
// not a guess between methods. Fields base sets win, so a TokenURL can
// always be overridden.
func (p Preset) Config(base Config) Config {
	if base.TokenURL == "" {
		base.TokenURL = p.TokenURL
	}
	if base.RevocationURL == "" {
		base.RevocationURL = p.RevocationURL
		base.RevocationStyle = p.RevocationStyle
	}
	if base.AuthMethod == "" && base.ClientSecret != "" && base.PrivateKey == nil {
		base.AuthMethod = p.AuthMethod
	}
	if len(base.FHIRBaseURLs) == 0 && p.FHIRBaseURL != "" {
		// The token goes to the platform's FHIR server only.
		base.FHIRBaseURLs = []string{p.FHIRBaseURL}
	}
	return base
}

// Health Gorilla's sandbox and production environments, as their API
// documentation describes them: client_secret_post at {base}/oauth/token,
// authorization at {base}/oauth/authorize, FHIR R4 at {base}/fhir/R4, and
// revocation by GET {base}/oauth/cancel?token=….
//
// Their refresh guide writes the token endpoint as /oauth2/token, while the
// API reference, token lifecycle and environments pages write /oauth/token,
// which the presets use. Should your account answer on the other path, set
// Config.TokenURL (Preset.Config keeps it) or change the preset's TokenURL
// in a copy.
var (
	HealthGorillaSandbox = Preset{
		Name:            "Health Gorilla sandbox",
		BaseURL:         "https://sandbox.healthgorilla.com",
		AuthorizeURL:    "https://sandbox.healthgorilla.com/oauth/authorize",
		TokenURL:        "https://sandbox.healthgorilla.com/oauth/token",
		RevocationURL:   "https://sandbox.healthgorilla.com/oauth/cancel",
		RevocationStyle: RevokeQueryGET,
		FHIRBaseURL:     "https://sandbox.healthgorilla.com/fhir/R4",
		AuthMethod:      ClientSecretPost,
	}
	HealthGorillaProduction = Preset{
		Name:            "Health Gorilla production",
		BaseURL:         "https://api.healthgorilla.com",
		AuthorizeURL:    "https://api.healthgorilla.com/oauth/authorize",
		TokenURL:        "https://api.healthgorilla.com/oauth/token",
		RevocationURL:   "https://api.healthgorilla.com/oauth/cancel",
		RevocationStyle: RevokeQueryGET,
		FHIRBaseURL:     "https://api.healthgorilla.com/fhir/R4",
		AuthMethod:      ClientSecretPost,
	}
)
