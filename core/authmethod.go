package core

// AuthMethod is how the client authenticates to the token endpoint, named as
// in the token_endpoint_auth_methods_supported field of the SMART
// configuration. It is configured, never guessed: retrying a refresh with
// another method would send the refresh token twice.
type AuthMethod string

// The supported client authentication methods.
const (
	// ClientSecretPost sends client_id and client_secret in the form body.
	// Health Gorilla documents this method.
	ClientSecretPost AuthMethod = "client_secret_post"
	// ClientSecretBasic sends client_id:client_secret in an HTTP Basic
	// Authorization header, as SMART's confidential symmetric profile does.
	ClientSecretBasic AuthMethod = "client_secret_basic"
	// None sends only client_id, for public clients.
	None AuthMethod = "none"
)
