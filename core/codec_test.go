package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// jsonCodec is the scs codec of apps that want readable sessions or share
// them with services in other languages: the deadline and the values as
// JSON, decoded back into map[string]any.
type jsonCodec struct{}

type jsonSession struct {
	Deadline time.Time      `json:"deadline"`
	Values   map[string]any `json:"values"`
}

func (jsonCodec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	return json.Marshal(jsonSession{deadline, values})
}

func (jsonCodec) Decode(b []byte) (time.Time, map[string]any, error) {
	var s jsonSession
	err := json.Unmarshal(b, &s)
	return s.Deadline, s.Values, err
}

// stringCodec keeps only string values, as a codec for a store of string
// fields (a Redis hash, form encoding) does: anything else is an error.
type stringCodec struct{}

func (stringCodec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	form := url.Values{"\x00deadline": {deadline.Format(time.RFC3339Nano)}}
	for k, v := range values {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("stringCodec: value %q is a %T, not a string", k, v)
		}
		form.Set(k, s)
	}
	return []byte(form.Encode()), nil
}

func (stringCodec) Decode(b []byte) (time.Time, map[string]any, error) {
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return time.Time{}, nil, err
	}
	deadline, err := time.Parse(time.RFC3339Nano, form.Get("\x00deadline"))
	if err != nil {
		return time.Time{}, nil, errors.New("stringCodec: no deadline")
	}
	values := map[string]any{}
	for k := range form {
		if k != "\x00deadline" {
			values[k] = form.Get(k)
		}
	}
	return deadline, values, nil
}

// TestCodecRoundTrip: whatever scs codec the app uses, with and without
// encryption, the token survives Save → next request → Token → refresh →
// next request, and no refresh token is sent twice.
func TestCodecRoundTrip(t *testing.T) {
	codecs := []struct {
		name  string
		codec scs.Codec
	}{
		{"gob", scs.GobCodec{}},
		{"json", jsonCodec{}},
		{"strings only", stringCodec{}},
	}
	for _, c := range codecs {
		for _, encrypted := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/encrypted=%v", c.name, encrypted), func(t *testing.T) {
				f := newFixture(t, smarttest.Options{}, func(cfg *core.Config) {
					cfg.Sessions.Codec = c.codec
					if encrypted {
						cfg.EncryptionKeys = [][]byte{newKey()}
					}
				})
				session, saved := f.login()
				tok, err := f.token(session)
				if err != nil {
					t.Fatalf("the request after Save: %v", err)
				}
				if tok.AccessToken != saved.AccessToken || tok.RefreshToken != saved.RefreshToken ||
					tok.IDToken != saved.IDToken || tok.Patient != saved.Patient || !tok.Expiry.Equal(saved.Expiry) ||
					tok.Extra["need_patient_banner"] != true {
					t.Fatalf("the token changed on its way through the %s codec", c.name)
				}
				f.clock.Advance(time.Hour)
				refreshed, err := f.token(session)
				if err != nil {
					t.Fatalf("refresh: %v", err)
				}
				if refreshed.AccessToken == saved.AccessToken || refreshed.RefreshToken == saved.RefreshToken {
					t.Fatal("not refreshed")
				}
				again, err := f.token(session)
				if err != nil {
					t.Fatalf("the request after the refresh: %v", err)
				}
				if again.AccessToken != refreshed.AccessToken || again.RefreshToken != refreshed.RefreshToken ||
					again.Patient != saved.Patient || again.Extra["need_patient_banner"] != true {
					t.Fatal("the refreshed token was not persisted as it was")
				}
				info, err := f.r.Info(f.request(session))
				if err != nil || info.Refreshes != 1 {
					t.Errorf("Info = %+v, %v", info, err)
				}
				if n := f.srv.RefreshCalls(); n != 1 {
					t.Errorf("%d refresh calls, want 1", n)
				}
				f.checkNoReuse()
			})
		}
	}
}

// TestCodecStorm: 300 concurrent requests over 10 sessions kept by a JSON
// codec with encryption, at expiry, make one refresh per session, and every
// request gets its session's token.
func TestCodecStorm(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(cfg *core.Config) {
		cfg.Sessions.Codec = jsonCodec{}
		cfg.EncryptionKeys = [][]byte{newKey()}
	})
	sessions := make([]string, 10)
	for i := range sessions {
		sessions[i], _ = f.login()
	}
	f.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for i := range 300 {
		wg.Go(func() {
			ctx, err := f.sm.Load(context.Background(), sessions[i%len(sessions)])
			if err != nil {
				errs <- err
				return
			}
			if _, err := f.r.Token(ctx); err != nil {
				errs <- err
				return
			}
			if _, _, err := f.sm.Commit(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request: %v", err)
	}
	if n := f.srv.RefreshCalls(); n != len(sessions) {
		t.Errorf("%d refresh calls, want %d", n, len(sessions))
	}
	for _, s := range sessions {
		info, err := f.r.Info(f.request(s))
		if err != nil || info.Refreshes != 1 {
			t.Errorf("session after the storm: %+v, %v", info, err)
		}
	}
	f.checkNoReuse()
}
