package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
)

// SMARTConfiguration is the SMART configuration a FHIR server publishes at
// {base}/.well-known/smart-configuration (SMART App Launch, "Conformance").
// Discover fetches it; ParseSMARTConfiguration decodes it. Values returned
// by Discover are shared between callers and must not be modified.
type SMARTConfiguration struct {
	Issuer                                     string
	JWKSURI                                    string
	AuthorizationEndpoint                      string
	TokenEndpoint                              string
	RevocationEndpoint                         string
	IntrospectionEndpoint                      string
	TokenEndpointAuthMethodsSupported          []AuthMethod
	TokenEndpointAuthSigningAlgValuesSupported []string
	GrantTypesSupported                        []string
	ResponseTypesSupported                     []string
	ScopesSupported                            []string
	CodeChallengeMethodsSupported              []string
	Capabilities                               []string
	// Extra holds every other field of the document, as decoded by
	// encoding/json.
	Extra map[string]any
	// Raw is the document as received.
	Raw json.RawMessage

	url string // where Discover fetched it from
}

// ParseSMARTConfiguration decodes a SMART configuration document. It must
// be a JSON object with a token_endpoint; every endpoint it names must be an
// absolute https URL (http only on a loopback host), and the known fields
// must have their documented types (null counts as absent). The error is a
// *DiscoveryError.
func ParseSMARTConfiguration(data []byte) (*SMARTConfiguration, error) {
	bad := func(reason string) error { return &DiscoveryError{Reason: reason} }
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, bad(notJSONObject)
	}
	c := &SMARTConfiguration{Raw: bytes.Clone(data)}
	take := func(name string, dst any) error {
		raw, ok := fields[name]
		if !ok {
			return nil
		}
		delete(fields, name)
		if string(raw) == "null" {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			kind := "a string"
			if _, list := dst.(*[]string); list {
				kind = "an array of strings"
			} else if _, list := dst.(*[]AuthMethod); list {
				kind = "an array of strings"
			}
			return bad(name + " is not " + kind)
		}
		return nil
	}
	endpoints := c.endpoints()
	for _, e := range endpoints {
		if err := take(e.name, e.dst); err != nil {
			return nil, err
		}
	}
	for name, dst := range map[string]any{
		"issuer":                                &c.Issuer,
		"token_endpoint_auth_methods_supported": &c.TokenEndpointAuthMethodsSupported,
		"token_endpoint_auth_signing_alg_values_supported": &c.TokenEndpointAuthSigningAlgValuesSupported,
		"grant_types_supported":                            &c.GrantTypesSupported,
		"response_types_supported":                         &c.ResponseTypesSupported,
		"scopes_supported":                                 &c.ScopesSupported,
		"code_challenge_methods_supported":                 &c.CodeChallengeMethodsSupported,
		"capabilities":                                     &c.Capabilities,
	} {
		if err := take(name, dst); err != nil {
			return nil, err
		}
	}
	if c.TokenEndpoint == "" {
		return nil, bad("token_endpoint is missing")
	}
	for _, e := range endpoints {
		if *e.dst == "" {
			continue
		}
		if err := checkEndpoint(*e.dst); err != nil {
			return nil, bad(e.name + " " + err.Error())
		}
	}
	if len(fields) > 0 {
		c.Extra = make(map[string]any, len(fields))
		for k, raw := range fields {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, bad(k + " is not valid JSON")
			}
			c.Extra[k] = v
		}
	}
	return c, nil
}

const notJSONObject = "not a JSON object"

// endpoint is a URL field of the document.
type endpoint struct {
	name string
	dst  *string
}

func (c *SMARTConfiguration) endpoints() []endpoint {
	return []endpoint{
		{"token_endpoint", &c.TokenEndpoint},
		{"authorization_endpoint", &c.AuthorizationEndpoint},
		{"revocation_endpoint", &c.RevocationEndpoint},
		{"introspection_endpoint", &c.IntrospectionEndpoint},
		{"jwks_uri", &c.JWKSURI},
	}
}

// checkHTTPS reports an endpoint that does not use https, for documents
// of servers that are not on a loopback host.
func (c *SMARTConfiguration) checkHTTPS() error {
	for _, e := range c.endpoints() {
		if u, err := url.Parse(*e.dst); *e.dst != "" && (err != nil || u.Scheme != "https") {
			return errorString(e.name + " must use https")
		}
	}
	return nil
}

// Supports reports whether the server accepts client authentication
// method m at its token endpoint: whether token_endpoint_auth_methods_supported
// lists it or, when the document has no such list, whether its capabilities
// name the matching SMART client type (client-public for None,
// client-confidential-symmetric for ClientSecretBasic,
// client-confidential-asymmetric for PrivateKeyJWT).
func (c *SMARTConfiguration) Supports(m AuthMethod) bool {
	if len(c.TokenEndpointAuthMethodsSupported) > 0 {
		return slices.Contains(c.TokenEndpointAuthMethodsSupported, m)
	}
	capability := map[AuthMethod]string{
		None:              "client-public",
		ClientSecretBasic: "client-confidential-symmetric",
		PrivateKeyJWT:     "client-confidential-asymmetric",
	}[m]
	return capability != "" && slices.Contains(c.Capabilities, capability)
}

// Check reports whether a client that authenticates with method can get
// and refresh tokens from the server as this package and SMART expect. It
// returns a *DiscoveryError (several, joined) when a list the document
// publishes lacks what is needed: method in
// token_endpoint_auth_methods_supported, S256 in
// code_challenge_methods_supported, refresh_token in grant_types_supported.
// Lists the document leaves out are not held against it.
func (c *SMARTConfiguration) Check(method AuthMethod) error {
	var errs []error
	bad := func(reason string) { errs = append(errs, &DiscoveryError{URL: c.url, Reason: reason}) }
	if l := c.TokenEndpointAuthMethodsSupported; len(l) > 0 && !slices.Contains(l, method) {
		bad(fmt.Sprintf("token_endpoint_auth_methods_supported %v lacks %s", l, method))
	}
	if l := c.CodeChallengeMethodsSupported; len(l) > 0 && !slices.Contains(l, "S256") {
		bad(fmt.Sprintf("code_challenge_methods_supported %v lacks S256", l))
	}
	if l := c.GrantTypesSupported; len(l) > 0 && !slices.Contains(l, "refresh_token") {
		bad(fmt.Sprintf("grant_types_supported %v lacks refresh_token", l))
	}
	return errors.Join(errs...)
}

// Config returns base with the endpoints of the document filled in where
// base leaves them empty: TokenURL from token_endpoint and RevocationURL
// from revocation_endpoint. Fields base sets win. New then also refuses an
// AuthMethod that the document's token_endpoint_auth_methods_supported
// lacks, and, for PrivateKeyJWT, a signing algorithm that its
// token_endpoint_auth_signing_alg_values_supported lacks.
func (c *SMARTConfiguration) Config(base Config) Config {
	if base.TokenURL == "" {
		base.TokenURL = c.TokenEndpoint
	}
	if base.RevocationURL == "" {
		base.RevocationURL = c.RevocationEndpoint
	}
	base.discovered = c
	return base
}
