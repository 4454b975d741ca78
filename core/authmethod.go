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
	// PrivateKeyJWT sends client_id, client_assertion_type
	// (ClientAssertionType) and a client_assertion: a JWT signed with
	// Config.PrivateKey, made afresh for every request, as SMART's
	// confidential asymmetric profile does (RFC 7523).
	PrivateKeyJWT AuthMethod = "private_key_jwt"
)

// ClientAssertionType is the client_assertion_type sent with PrivateKeyJWT.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// The signing algorithms of PrivateKeyJWT client assertions, the two SMART
// requires clients to support.
const (
	// RS384 is RSASSA-PKCS1-v1_5 with SHA-384, for RSA keys.
	RS384 = "RS384"
	// ES384 is ECDSA on P-384 with SHA-384.
	ES384 = "ES384"
)
