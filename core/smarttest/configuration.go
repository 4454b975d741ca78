package smarttest

import (
	"net/http"
	"slices"
	"strings"

	"github.com/smartrefresh/smartrefresh/core"
)

// smartConfiguration is the SMART discovery document,
// .well-known/smart-configuration.
type smartConfiguration struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	IDTokenSigningAlgs                []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	Capabilities                      []string `json:"capabilities"`
}

// configuration returns the SMART configuration the server publishes at
// /.well-known/smart-configuration and /fhir/.well-known/smart-configuration.
// Its issuer is the server's URL, the iss of every id_token, and its
// jwks_uri the JWKSURL where the id_token signing key is published.
func (s *Server) configuration() smartConfiguration {
	grantTypes := []string{"authorization_code", "refresh_token"}
	if s.opts.NoRefreshToken {
		grantTypes = grantTypes[:1]
	}
	client := "client-confidential-symmetric"
	var algs []string
	switch s.opts.AuthMethod {
	case core.None:
		client = "client-public"
	case core.PrivateKeyJWT:
		client = "client-confidential-asymmetric"
		algs = []string{core.RS384, core.ES384}
	}
	capabilities := []string{
		"launch-standalone", client, "context-standalone-patient",
		"context-banner", "context-style", "permission-patient", "permission-v1",
		"sso-openid-connect",
	}
	if !s.opts.NoRefreshToken {
		capabilities = append(capabilities, "permission-offline")
	}
	var scopes []string
	for _, sc := range strings.Fields(s.opts.Scope + " " + DefaultScope + " online_access launch/encounter") {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return smartConfiguration{
		Issuer:                            s.URL,
		AuthorizationEndpoint:             s.AuthorizeURL,
		TokenEndpoint:                     s.TokenURL,
		RevocationEndpoint:                s.RevokeURL,
		JWKSURI:                           s.JWKSURL,
		IDTokenSigningAlgs:                []string{string(idTokenAlg)},
		TokenEndpointAuthMethodsSupported: []string{string(s.opts.AuthMethod)},
		TokenEndpointAuthSigningAlgs:      algs,
		GrantTypesSupported:               grantTypes,
		ResponseTypesSupported:            []string{"code"},
		ScopesSupported:                   scopes,
		CodeChallengeMethodsSupported:     []string{"S256"},
		Capabilities:                      capabilities,
	}
}

func (s *Server) serveConfiguration(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.configuration())
}

// serveStyle serves the SMART style sheet named by smart_style_url.
func (s *Server) serveStyle(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"color_background":     "#edeae3",
		"color_error":          "#9e2d2d",
		"color_highlight":      "#69b5ce",
		"color_modal_backdrop": "",
		"color_success":        "#498e49",
		"color_text":           "#303030",
		"dim_border_radius":    "6px",
		"dim_font_size":        "13px",
		"dim_spacing_size":     "20px",
		"font_family_body":     "Georgia, Times, 'Times New Roman', serif",
		"font_family_heading":  "'HelveticaNeue-Light', Helvetica, Arial, 'Lucida Grande', sans-serif",
	})
}
