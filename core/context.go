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
	tok, ok := ctx.Value(tokenKey{}).(*Token)
	return tok, ok && tok != nil
}
