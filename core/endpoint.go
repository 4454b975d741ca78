package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxResponseBytes bounds every read of a token endpoint answer, as
// golang.org/x/oauth2 does.
const maxResponseBytes = 1 << 20

// maxRetryAfter caps a Retry-After: a server that asks for a day or more
// gets a day, which is as good as "not soon" to every caller.
const maxRetryAfter = 24 * time.Hour

// maxExpiresIn is the longest access-token lifetime accepted (400 days);
// anything longer is treated as a broken answer.
const maxExpiresIn = 400 * 24 * 60 * 60

// requestToken sends one refresh_token grant to the token endpoint and
// returns the server's answer. It sends the refresh token exactly once: it
// never retries and never tries another authentication method.
func (r *Refresher) requestToken(ctx context.Context, refreshToken string) (*Token, error) {
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
	}
	if r.cfg.Scope != "" {
		form.Set("scope", r.cfg.Scope)
	}
	resp, body, sent, err := r.postGrant(ctx, form, refreshToken)
	if err != nil {
		return nil, err
	}
	tok, trailing, err := parseAnswer(resp.StatusCode, resp.Header, body, r.cfg.Now(), sent, refreshToken)
	r.logTrailing(ctx, "refresh", trailing)
	return tok, err
}

// logTrailing logs that a token answer went on after its JSON object (a
// proxy's or a server's addition), which was ignored. Only the count is
// logged: the bytes are the server's, and could be anything.
func (r *Refresher) logTrailing(ctx context.Context, grant string, trailing int) {
	if trailing > 0 {
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: token answer has trailing bytes after its JSON object; they were ignored",
			"grant_type", grant, "trailing_bytes", trailing)
	}
}

// postGrant sends one grant (form, which carries the secrets secret) to
// the token endpoint with the client authentication, and reads its answer,
// up to maxResponseBytes. It sends the grant exactly once: no retry, no
// other authentication method, no redirect followed. sent lists every
// secret the request carried, for scrubbing errors; no error carries one.
func (r *Refresher) postGrant(ctx context.Context, form url.Values, secret ...string) (resp *http.Response, body []byte, sent secrets, err error) {
	req, sent, err := r.authRequest(ctx, r.cfg.TokenURL, form)
	if err != nil {
		return nil, nil, nil, err
	}
	sent = append(sent, secret...)
	resp, err = r.endpoints.Do(req)
	if err != nil {
		return nil, nil, nil, &transientError{err: sent.scrubErr(scrubURLError(err))}
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, nil, nil, &transientError{err: sent.scrubErr(fmt.Errorf("reading answer: %w", err))}
	}
	if len(body) > maxResponseBytes {
		return nil, nil, nil, &ResponseError{StatusCode: resp.StatusCode, ContentType: limit(sent.scrub(resp.Header.Get("Content-Type")), 64),
			Reason: "answer larger than 1 MiB"}
	}
	return resp, body, sent, nil
}

// parseAnswer is ParseTokenResponse for the answer to a refresh that sent
// refreshToken and the secrets sent (refreshToken among them): its error
// carries none of them, nor any token of the answer.
func parseAnswer(status int, header http.Header, body []byte, now time.Time, sent secrets, refreshToken string) (*Token, int, error) {
	tok, trailing, err := parseTokenResponse(status, header, body, now)
	if err != nil {
		err = sent.scrubAnswer(err, status, header, body)
		if rotatedAway(body, refreshToken) {
			return nil, trailing, &UnusableRotationError{Err: err}
		}
		return nil, trailing, err
	}
	return tok, trailing, nil
}

// rotatedAway reports whether an answer that could not be used still
// shows that the server issued a refresh token other than sent: then the
// refresh token sent is spent, and keeping it would only lead to a reuse.
// It reads the body as ParseTokenResponse does (readJSONObject).
func rotatedAway(body []byte, sent string) bool {
	fields, _, ok := readJSONObject(body)
	if !ok {
		return false
	}
	var rt string
	if json.Unmarshal(fields["refresh_token"], &rt) != nil {
		return false
	}
	return rt != "" && rt != sent
}

// utf8BOM is the byte order mark some servers (IIS) put before a body.
var utf8BOM = []byte("\xef\xbb\xbf")

// readJSONObject reads the JSON object a token endpoint answer carries:
// the first JSON value of body, after a UTF-8 byte order mark and
// whitespace, if it is an object. Whatever follows it (a proxy's
// "<!-- node 3 -->", a second value) is ignored; trailing is its length,
// whitespace aside. ok is false when body does not start with a JSON
// object.
func readJSONObject(body []byte) (fields map[string]json.RawMessage, trailing int, ok bool) {
	body = bytes.TrimPrefix(body, utf8BOM)
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, 0, false
	}
	rest := bytes.TrimSpace(body[dec.InputOffset():])
	return fields, len(rest), true
}

// UnusableRotationError is a token answer that rotated the refresh token
// (it carries a new one) but cannot be used otherwise, such as one with a
// token type other than Bearer. The refresh token sent is spent at the
// server, so the session's token is removed rather than kept for a retry
// that would be a reuse: it matches ErrReauthRequired.
type UnusableRotationError struct {
	// Err is the *ResponseError that describes what was unusable.
	Err error
}

func (e *UnusableRotationError) Error() string {
	return "smartrefresh: the server rotated the refresh token but its answer is unusable: " + e.Err.Error()
}

// Is makes an UnusableRotationError match ErrReauthRequired only, whatever
// class its cause has on its own.
func (e *UnusableRotationError) Is(target error) bool { return target == ErrReauthRequired }

// scrubURLError keeps the cause of a transport error but drops the
// *url.Error wrapper, whose message repeats the URL.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// scrubAnswer removes the secrets the request sent, and every token of the
// answer, from the server-controlled text of an error from
// ParseTokenResponse, in case the server echoes what it received, and adds
// a Snippet of a body that was not a JSON error object when that body
// cannot carry a token (see snippet).
func (s secrets) scrubAnswer(err error, status int, header http.Header, body []byte) error {
	s = s.withAnswer(body)
	// The parser has cut the fields to length, possibly in the middle of a
	// secret: scrub the whole fields first, then cut.
	var te *TokenError
	if errors.As(err, &te) {
		if e, ok := decodeOAuthError(body); ok {
			te.Code = s.scrubCode(e.Code)
			te.Description = limit(s.scrub(e.Description), 256)
			te.URI = limit(s.scrub(e.URI), 256)
		} else {
			te.ContentType = limit(s.scrub(mediaType(header)), 64)
			te.Snippet = s.snippet(status, header, body)
		}
	}
	var re *ResponseError
	if errors.As(err, &re) {
		re.ContentType = limit(s.scrub(header.Get("Content-Type")), 64)
		re.Snippet = s.snippet(status, header, body)
	}
	return err
}

// ParseTokenResponse decodes a token endpoint answer (RFC 6749 section 5,
// SMART App Launch) received at now. A 2xx answer must carry a JSON object
// with a non-empty access_token and a token_type of Bearer (in any case; a
// missing token_type is taken as Bearer); a refresh_token, if present, must
// be a string. Every field other than the ones Token names goes into Extra.
// The object is the first JSON value of the body, after a UTF-8 byte order
// mark (IIS sends one) and whitespace; whatever follows it (a proxy's
// "<!-- node 3 -->", a second value) is ignored. A 2xx answer without an
// access token that carries an OAuth error ({"error":"invalid_grant"}) is
// a *TokenError, classed by its code as a 400 would be.
//
// The rest is read leniently, because a 2xx answer means the server has
// already redeemed the refresh token: rejecting the answer for a minor fault
// would keep the old refresh token, and the next refresh would send it again
// (a reuse, which a strict server punishes by revoking the grant). So
// expires_in may be a number, a numeric string, or missing; when it is
// unusable (not a number, zero, negative, or over 400 days) Expiry is left
// zero, so the token is refreshed after a 401 only, and the raw value is kept
// in Extra["expires_in"]. A scope, id_token, patient or encounter that is
// not a string is kept in Extra under its name.
//
// Other answers become a *TokenError; unusable 2xx answers a *ResponseError.
func ParseTokenResponse(status int, header http.Header, body []byte, now time.Time) (*Token, error) {
	tok, _, err := parseTokenResponse(status, header, body, now)
	return tok, err
}

// parseTokenResponse is ParseTokenResponse; trailing is the length of
// what a 2xx answer had after its JSON object, ignored.
func parseTokenResponse(status int, header http.Header, body []byte, now time.Time) (_ *Token, trailing int, _ error) {
	ctype := header.Get("Content-Type")
	if status < 200 || status > 299 {
		return nil, 0, parseErrorResponse(status, header, body, now)
	}
	bad := func(reason string) error {
		return &ResponseError{StatusCode: status, ContentType: ctype, Reason: reason}
	}
	fields, trailing, ok := readJSONObject(body)
	if !ok {
		return nil, 0, bad("not a JSON object")
	}
	tok, err := tokenOf(fields, status, header, body, now, bad)
	if err != nil {
		return nil, trailing, err
	}
	return tok, trailing, nil
}

// tokenOf builds the Token of a 2xx answer's fields.
func tokenOf(fields map[string]json.RawMessage, status int, header http.Header, body []byte, now time.Time, bad func(string) error) (*Token, error) {
	t := &Token{}
	// str moves fields[name] into dst if it is a string or null; it reports
	// false, leaving the field in place, if it is anything else.
	str := func(name string, dst *string) bool {
		raw, ok := fields[name]
		if !ok {
			return true
		}
		if string(raw) != "null" && json.Unmarshal(raw, dst) != nil {
			return false
		}
		delete(fields, name)
		return true
	}
	for name, dst := range map[string]*string{
		"access_token": &t.AccessToken, "token_type": &t.TokenType, "refresh_token": &t.RefreshToken,
	} {
		if !str(name, dst) {
			return nil, bad(name + " is not a string")
		}
	}
	for name, dst := range map[string]*string{
		"scope": &t.Scope, "id_token": &t.IDToken, "patient": &t.Patient, "encounter": &t.Encounter,
	} {
		str(name, dst) // a non-string stays in Extra
	}
	if t.AccessToken == "" {
		if e, ok := decodeOAuthError(body); ok {
			// A 200 carrying an OAuth error (and no token): the server
			// refused, whatever the status says; classed by its code as
			// a 400 would be.
			return nil, oauthTokenError(status, header, body, now, e)
		}
		return nil, bad("access_token is missing or empty")
	}
	if t.TokenType == "" {
		t.TokenType = "Bearer"
	} else if !strings.EqualFold(t.TokenType, "bearer") {
		return nil, bad(tokenTypeReason(t.TokenType))
	}
	if raw, ok := fields["expires_in"]; ok {
		if secs, ok := parseExpiresIn(raw); ok {
			delete(fields, "expires_in")
			if secs > 0 {
				t.Expiry = now.Add(time.Duration(secs) * time.Second)
			}
		}
	}
	if len(fields) > 0 {
		t.Extra = make(map[string]any, len(fields))
		for k, raw := range fields {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, bad(k + " is not valid JSON")
			}
			t.Extra[k] = v
		}
	}
	return t, nil
}

// knownTokenTypes are the registered OAuth access token types (IANA),
// which an error may name; any other token_type is server text that could
// be anything, a token included, and is not repeated.
var knownTokenTypes = []string{"Bearer", "DPoP", "N_A", "PoP", "MAC"}

func tokenTypeReason(tt string) string {
	for _, k := range knownTokenTypes {
		if strings.EqualFold(tt, k) {
			return "token_type " + strconv.Quote(k) + " is not Bearer"
		}
	}
	return "token_type is not Bearer"
}

// parseExpiresIn reads expires_in: a JSON number or numeric string of
// seconds, at most 400 days, or null (0). ok is false for anything else.
func parseExpiresIn(raw json.RawMessage) (secs int64, ok bool) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return 0, true
	}
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false
		}
		raw = []byte(strings.TrimSpace(s))
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f > maxExpiresIn {
		return 0, false
	}
	return int64(f), true
}

// parseErrorResponse turns a non-2xx answer into a *TokenError.
func parseErrorResponse(status int, header http.Header, body []byte, now time.Time) error {
	if e, ok := decodeOAuthError(body); ok {
		return oauthTokenError(status, header, body, now, e)
	}
	return &TokenError{StatusCode: status, RetryAfter: parseRetryAfter(header.Get("Retry-After"), now),
		ContentType: limit(mediaType(header), 64)}
}

// oauthTokenError is the *TokenError of an answer carrying the OAuth error
// e: a 4xx or 5xx, or a 2xx without an access token.
func oauthTokenError(status int, header http.Header, body []byte, now time.Time, e oauthError) *TokenError {
	// An error answer that carries a token field besides: keep its value
	// out of the text.
	hide := secrets(nil).withAnswer(body)
	return &TokenError{StatusCode: status, RetryAfter: parseRetryAfter(header.Get("Retry-After"), now),
		Code: hide.scrubCode(e.Code), Description: limit(hide.scrub(e.Description), 256), URI: limit(hide.scrub(e.URI), 256)}
}

// oauthError is an OAuth error answer (RFC 6749 section 5.2).
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
	URI         string `json:"error_uri"`
}

// decodeOAuthError decodes body as an OAuth error answer; ok is false when
// it is not one.
func decodeOAuthError(body []byte) (e oauthError, ok bool) {
	fields, _, ok := readJSONObject(body)
	if !ok {
		return oauthError{}, false
	}
	for name, dst := range map[string]*string{"error": &e.Code, "error_description": &e.Description, "error_uri": &e.URI} {
		if raw, ok := fields[name]; ok && json.Unmarshal(raw, dst) != nil {
			return oauthError{}, false
		}
	}
	if e.Code == "" {
		return oauthError{}, false
	}
	return e, true
}

// mediaType returns the media type of the answer's Content-Type, or "none".
func mediaType(header http.Header) string {
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if mt == "" {
		return "none"
	}
	return mt
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date. A
// wait of a day or more is clamped to maxRetryAfter, not dropped: it still
// says the server refused, ends the retries and goes to the app's client.
// Zero means no usable hint (none, unreadable, zero or in the past).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if strings.Trim(v, "0123456789") == "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil || s >= uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter // only digits: out of range means very long
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// limit cuts s to at most n bytes of printable text.
func limit(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
