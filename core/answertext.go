package core

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// What of an endpoint's answer may go into an error. A fresh token in an
// answer is a secret the client did not send, so scrubbing what was sent
// does not hide it: the decision is taken on the decoded JSON (any key,
// however escaped), and a token answer never gets a snippet at all.

// sensitiveWords are the parts of a field name that mark its value as a
// secret: access_token, refresh_token, id_token, client_secret,
// client_assertion, password, and their variants.
var sensitiveWords = []string{"token", "secret", "assertion", "password", "credential", "jwt"}

// sensitiveName reports whether a decoded field name (or text) names a
// secret.
func sensitiveName(name string) bool {
	name = strings.ToLower(name)
	for _, w := range sensitiveWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// jsonText is what a body decodes to as JSON, as far as it goes: a body
// cut short or broken halfway still yields what came before the break.
type jsonText struct {
	// json: the body starts as a JSON object or array.
	json bool
	// object: the whole body is one valid JSON object.
	object bool
	// sensitiveKey: some key, at any depth, names a secret.
	sensitiveKey bool
	// values are the string values, at any depth; hidden those under a
	// key that names a secret (or inside such a key's object or array).
	values, hidden []string
}

// maxJSONTokens bounds the walk over an answer (which is at most
// maxResponseBytes long anyway).
const maxJSONTokens = 1 << 16

// decodeJSONText walks body as JSON.
func decodeJSONText(body []byte) jsonText {
	body = bytes.TrimPrefix(body, utf8BOM)
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var jt jsonText
	if len(trimmed) == 0 || trimmed[0] != '{' && trimmed[0] != '[' {
		return jt
	}
	jt.json = true
	jt.object = trimmed[0] == '{' && json.Valid(body)
	type frame struct {
		object, expectKey, sensitive bool
		key                          string
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for range maxJSONTokens {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		inherited := top != nil && top.sensitive
		if top != nil && top.object && !top.expectKey {
			inherited = inherited || sensitiveName(top.key)
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, frame{object: v == '{', expectKey: v == '{', sensitive: inherited})
			default:
				if len(stack) > 0 {
					stack = stack[:len(stack)-1]
				}
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].expectKey = true
				}
			}
		case string:
			if top != nil && top.object && top.expectKey {
				top.key, top.expectKey = v, false
				jt.sensitiveKey = jt.sensitiveKey || sensitiveName(v)
				continue
			}
			jt.values = append(jt.values, v)
			if inherited {
				jt.hidden = append(jt.hidden, v)
			}
			if top != nil && top.object {
				top.expectKey = true
			}
		default: // numbers, booleans, null
			if top != nil && top.object {
				top.expectKey = true
			}
		}
	}
	return jt
}

// withAnswer returns s and, besides, the values of every field of body
// that names a secret: a server may put a fresh token into an error answer
// next to its error_description, or echo it there.
func (s secrets) withAnswer(body []byte) secrets {
	return append(s, decodeJSONText(body).hidden...)
}

// snippet returns the start of body for an error message: whitespace
// collapsed, the secrets scrubbed from the whole body, then the text cut to snippetBytes printable bytes. It returns "" for a body that
// might carry a token, since a fresh token is a secret the client does not
// know yet: a 2xx answer other than an HTML page (a token answer), a
// form-encoded answer, a JSON answer with a key naming a secret (decoded,
// so escapes such as "\u0061ccess_token" do not hide it), and a text that,
// with its JSON and percent escapes undone, names a token field.
func (s secrets) snippet(status int, header http.Header, body []byte) string {
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if len(body) == 0 || mt == "application/x-www-form-urlencoded" {
		return ""
	}
	ok2xx := status >= 200 && status <= 299
	if ok2xx && mt != "text/html" {
		return ""
	}
	if jt := decodeJSONText(body); jt.json && (ok2xx || jt.sensitiveKey) {
		return ""
	}
	text := s.withAnswer(body).scrub(strings.Join(strings.Fields(string(body)), " "))
	if tokenField.MatchString(strings.ToLower(unescapeText(text))) {
		return ""
	}
	return limit(text, snippetBytes)
}

// tokenField matches the name of a field that carries a token, in the
// spellings servers use.
var tokenField = regexp.MustCompile(`(access|refresh|id|issued)[_ -]?token|assertion`)

// unescapeText undoes, as far as they go, the JSON (\uXXXX, \n, …) and
// percent escapes of text, several times over, so that a search for a
// field name sees "access_token" in "\u0061ccess%5Ftoken".
func unescapeText(text string) string {
	for range 3 {
		next := unescapePercent(unescapeJSON(text))
		if next == text {
			break
		}
		text = next
	}
	return text
}

func unescapeJSON(text string) string {
	if !strings.Contains(text, `\`) {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '\\' || i+1 >= len(text) {
			b.WriteByte(c)
			continue
		}
		switch n := text[i+1]; n {
		case 'u':
			if i+6 <= len(text) {
				if r, err := strconv.ParseUint(text[i+2:i+6], 16, 32); err == nil {
					b.WriteRune(rune(r))
					i += 5
					continue
				}
			}
			b.WriteByte(c)
		case '"', '\\', '/':
			b.WriteByte(n)
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unescapePercent(text string) string {
	if !strings.Contains(text, "%") {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		if text[i] == '%' && i+3 <= len(text) {
			if v, err := strconv.ParseUint(text[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(text[i])
	}
	if !utf8.ValidString(b.String()) {
		return strings.ToValidUTF8(b.String(), "")
	}
	return b.String()
}

// knownErrorCodes are the OAuth error codes (RFC 6749, 6750, 7009, 8707,
// 9449) that go into a TokenError unscrubbed: the error class depends on
// them, and none is a secret.
var knownErrorCodes = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true,
	"unauthorized_client": true, "unsupported_grant_type": true, "invalid_scope": true,
	"access_denied": true, "server_error": true, "temporarily_unavailable": true,
	"invalid_token": true, "insufficient_scope": true, "unsupported_token_type": true,
	"invalid_target": true, "invalid_dpop_proof": true, "use_dpop_nonce": true,
}

// scrubCode scrubs an error code unless it is a known one.
func (s secrets) scrubCode(code string) string {
	if knownErrorCodes[code] {
		return code
	}
	return limit(s.scrub(code), 64)
}
