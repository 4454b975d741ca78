package core

import "context"

type tokenKey struct{}

// NewContext returns a copy of ctx that carries tok. The middleware
// adapters call it; TokenFromContext reads it back.
func NewContext(ctx context.Context, tok *Token) context.Context {
	return context.WithValue(ctx, tokenKey{}, tok)
}

// TokenFromContext returns the token the middleware attached to ctx.
func TokenFromContext(ctx context.Context) (*Token, bool) {
	switch v := ctx.Value(tokenKey{}).(type) {
	case *Token:
		return v, v != nil
	case *attachment:
		return v.tok, true
	}
	return nil, false
}

// attachment is what AttachRequest puts in a request's context: the
// token, and the launch it is of, which the request's later calls (Token,
// Client, Info) then use. A launch's attachment is made once per token
// (launchEntry), so that the hot path allocates nothing for it.
type attachment struct {
	tok    *Token
	launch string
}
