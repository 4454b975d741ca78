package core

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// TestTransformBundleReadError: a Bundle cut off by the connection (the
// browser went away, so the upstream request was canceled) is reported as
// that read error, not as a malformed answer from the FHIR server, which
// would send the operator after the wrong culprit.
func TestTransformBundleReadError(t *testing.T) {
	gone := errors.New("connection reset")
	for name, tc := range map[string]struct {
		src       io.Reader
		malformed bool
		cause     error
	}{
		"read error": {io.MultiReader(strings.NewReader(`{"resourceType":"Bundle","entry":[`), errReader{gone}), false, gone},
		"truncated":  {strings.NewReader(`{"resourceType":"Bundle","entry":[`), true, nil},
		"malformed":  {strings.NewReader(`{"resourceType":"Bundle","entry":[}`), true, nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := io.ReadAll(rewriteBundleLinks(io.NopCloser(tc.src), func(s string) string { return s }))
			if errors.Is(err, errNotJSON) != tc.malformed || tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("err = %v; want malformed %v, cause %v", err, tc.malformed, tc.cause)
			}
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestLinkKey: a key is read as JSON reads it, escapes decoded once.
func TestLinkKey(t *testing.T) {
	for raw, want := range map[string]jsonKey{
		`url`: keyURL, `fullUrl`: keyFullURL, `response`: keyResponse, `location`: keyLocation, `link`: keyLink, `entry`: keyEntry,
		`\u0075rl`: keyURL, `full\u0055rl`: keyFullURL,
		`\\u0075rl`: keyOther, `\\url`: keyOther, `url\`: keyOther, `Url`: keyOther, `resource`: keyOther, ``: keyOther,
	} {
		if got := linkKey([]byte(raw)); got != want {
			t.Errorf("linkKey(%s) = %d, want %d", raw, got, want)
		}
	}
}
