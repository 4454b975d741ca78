package core

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

// launchesRefresher is a Refresher with a real scs session manager using
// codec, for the launch index tests.
func launchesRefresher(t testing.TB, codec scs.Codec, enc [][]byte) (*Refresher, *scs.SessionManager) {
	sm := scs.New()
	sm.Codec = codec
	r, err := New(Config{TokenURL: "https://ehr.example/token", ClientID: "c", Sessions: sm, EncryptionKeys: enc})
	if err != nil {
		t.Fatal(err)
	}
	return r, sm
}

// roundTrip puts values into a new session, commits it through the
// manager's codec and store, and returns the session loaded again.
func roundTrip(t *testing.T, sm *scs.SessionManager, values map[string]any) context.Context {
	t.Helper()
	ctx, err := sm.Load(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range values {
		sm.Put(ctx, k, v)
	}
	token, _, err := sm.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err = sm.Load(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// TestOldSessionFormsAreOneLaunch: a session stored by the versions before
// launches (the text forms, the *record and sealed []byte before them,
// each with its identity) reads as one launch without an id, through every
// codec that can carry it; a request naming a launch gets ErrLaunchGone
// from it; and the launch index with its launches round-trips too.
func TestOldSessionFormsAreOneLaunch(t *testing.T) {
	rec := fullRecord()
	rec.Grant = "g1"
	codecs := map[string]scs.Codec{"gob": scs.GobCodec{}, "json": jsonStrings{}}
	for cname, codec := range codecs {
		for _, encrypted := range []bool{false, true} {
			var enc [][]byte
			if encrypted {
				enc = fuzzKeys[:1]
			}
			r, sm := launchesRefresher(t, codec, enc)
			text, _ := r.sessionValue(rec)
			forms := map[string]any{"text form": text}
			if cname == "gob" {
				if encrypted {
					blob, _ := r.sealer.seal(rec)
					forms["sealed []byte"] = blob
				} else {
					forms["*record"] = rec
				}
			}
			for fname, v := range forms {
				t.Run(cname+"/"+fname, func(t *testing.T) {
					ctx := roundTrip(t, sm, map[string]any{DefaultSessionKey: v, DefaultSessionKey + ".identity": `{"aud":"https://ehr.example/fhir","fhir_user":"https://ehr.example/fhir/Practitioner/1"}`})
					got, s, err := r.load(ctx, "")
					if err != nil || s.id != "" || s.entry != nil || !sameRecord(got, rec) {
						t.Fatalf("load: slot %+v, %v; same record %v", s, err, got != nil && sameRecord(got, rec))
					}
					info, err := r.Info(ctx)
					if err != nil || info.Launch != "" || info.FHIRUser != "https://ehr.example/fhir/Practitioner/1" || info.Patient != "123" {
						t.Errorf("Info = %+v, %v", info, err)
					}
					if _, _, err := r.load(ctx, newLaunchID()); !errors.Is(err, ErrLaunchGone) {
						t.Errorf("a named launch: %v, want ErrLaunchGone", err)
					}
				})
			}
			t.Run(cname+"/launch index", func(t *testing.T) {
				a, b := newLaunchID(), newLaunchID()
				recB := fullRecord()
				recB.Token.AccessToken, recB.Token.Patient = "at-b", "B"
				textB, _ := r.sessionValue(recB)
				index := encodeLaunches([]launchEntry{
					{ID: a, Used: 1, Identity: identity{Aud: "https://ehr.example/fhir"}, Token: text},
					{ID: b, Used: 2, Identity: identity{Aud: "https://ehr.example/fhir", Subject: "u"}, Token: textB},
				})
				ctx := roundTrip(t, sm, map[string]any{DefaultSessionKey: index})
				for name, want := range map[string]string{a: "123", b: "B", "": "B"} {
					got, s, err := r.load(WithLaunch(ctx, name), name)
					if err != nil || got.Token.Patient != want || name != "" && s.id != name {
						t.Errorf("launch %q: %v, %+v", name, err, s)
					}
				}
			})
		}
	}
}

// jsonStrings is an scs codec that keeps string values only, as JSON.
type jsonStrings struct{}

func (jsonStrings) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	m := map[string]string{"\x00deadline": deadline.Format(time.RFC3339Nano)}
	for k, v := range values {
		if s, ok := v.(string); ok {
			m[k] = s
		}
	}
	return json.Marshal(m)
}

func (jsonStrings) Decode(b []byte) (time.Time, map[string]any, error) {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return time.Time{}, nil, err
	}
	deadline, err := time.Parse(time.RFC3339Nano, m["\x00deadline"])
	values := map[string]any{}
	for k, v := range m {
		if k != "\x00deadline" {
			values[k] = v
		}
	}
	return deadline, values, err
}

// FuzzLaunchIndex feeds the launch index decoder arbitrary session values
// and launch names: it must never panic, accept only valid, distinct
// launch ids, and find a named launch only under its own id.
func FuzzLaunchIndex(f *testing.F) {
	a, b := newLaunchID(), newLaunchID()
	plain, _ := valueRefresher(f, nil, nil).sessionValue(fullRecord())
	f.Add(encodeLaunches([]launchEntry{{ID: a, Used: 1, Token: plain}, {ID: b, Used: 2, Identity: identity{Aud: "x"}, Token: "x"}})[len(launchesPrefix):], a)
	f.Add(`[{"id":"../x"}]`, "../x")
	f.Add(`[{"id":"`+a+`"},{"id":"`+a+`"}]`, "")
	f.Add(`{}`, "")
	f.Add(`null`, b)
	sealer, _ := newSealer(nil, nil, DefaultSessionKey)
	r := &Refresher{cfg: Config{SessionKey: DefaultSessionKey}, values: newValueCache(), sealer: sealer}
	f.Fuzz(func(t *testing.T, v, name string) {
		set, err := r.launchSetOf(launchesPrefix + v)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range set.list {
			if !validLaunchID(e.ID) || seen[e.ID] || e.err == nil && (e.rec == nil || e.att == nil || e.att.launch != e.ID) {
				t.Fatalf("accepted entry %+v", e)
			}
			seen[e.ID] = true
		}
		if e := set.find(name); e != nil && name != "" && e.ID != name {
			t.Fatalf("find(%q) = %q", name, e.ID)
		}
		if len(set.list) == 0 {
			return
		}
		again, err := r.launchSetOf(encodeLaunches(set.list))
		if err != nil || len(again.list) != len(set.list) {
			t.Fatalf("re-encoded index: %v", err)
		}
	})
}

// FuzzRequestLaunch: RequestLaunch never panics and reads the launch as
// the header, else url.ParseQuery's first smart_launch, says.
func FuzzRequestLaunch(f *testing.F) {
	f.Add("tab=labs&smart_launch=JZ4XAXGWXRRBXL3V6HYYBGS7UU", "")
	f.Add("smart%5Flaunch=A&smart_launch=B", "")
	f.Add("smart_launch=%zz&smart_launch=C", "")
	f.Add("a=1;smart_launch=D", "")
	f.Add("smart_launch=E", "F")
	f.Fuzz(func(t *testing.T, rawQuery, header string) {
		req := &http.Request{URL: &url.URL{RawQuery: rawQuery}, Header: http.Header{}}
		if header != "" {
			req.Header.Set(LaunchHeader, header)
		}
		got := RequestLaunch(req)
		want := req.Header.Get(LaunchHeader)
		if want == "" {
			q, _ := url.ParseQuery(rawQuery)
			want = q.Get(LaunchParam)
		}
		if got != want {
			t.Fatalf("RequestLaunch(%q, %q) = %q, want %q", rawQuery, header, got, want)
		}
	})
}

// TestOldFormsJoinALaunchList: a session of an older version (a *record
// under the gob codec, a sealed []byte, the text forms) keeps its login as
// a launch of its own when a Launcher adds one.
func TestOldFormsJoinALaunchList(t *testing.T) {
	rec := fullRecord()
	rec.Grant = "g1"
	for _, encrypted := range []bool{false, true} {
		var enc [][]byte
		if encrypted {
			enc = fuzzKeys[:1]
		}
		r, sm := launchesRefresher(t, scs.GobCodec{}, enc)
		text, _ := r.sessionValue(rec)
		var old any = rec
		if encrypted {
			old, _ = r.sealer.seal(rec)
		}
		for name, v := range map[string]any{"text": text, "before the text forms": old} {
			ctx := roundTrip(t, sm, map[string]any{DefaultSessionKey: v})
			tok := fullRecord().Token
			tok.AccessToken, tok.RefreshToken, tok.Patient = "at2", "rt2", "B"
			id, err := r.addLaunch(ctx, &tok, &identity{Aud: "https://ehr.example/fhir"})
			if err != nil {
				t.Fatal(err)
			}
			slots, _ := r.launchesOf(ctx)
			if len(slots) != 2 || slots[1].id != id || slots[0].entry.rec == nil || !sameRecord(slots[0].entry.rec, rec) {
				t.Errorf("encrypted=%v, %s: launches %+v", encrypted, name, slots)
			}
		}
	}
}

// TestLaunchesOfOneUser: a session holds one user's launches. A login of
// another user at the same server ends the launches of the first (the
// next clinician at a shared workstation, or a session an attacker
// planted); launches whose user is unknown, or at another server, stay.
func TestLaunchesOfOneUser(t *testing.T) {
	r, sm := launchesRefresher(t, scs.GobCodec{}, nil)
	ctx := roundTrip(t, sm, map[string]any{"other": "x"})
	aud := "https://ehr.example/fhir"
	add := func(user, patient, server string) string {
		tok := fullRecord().Token
		tok.AccessToken, tok.RefreshToken, tok.Patient = "at-"+user+patient+server, "rt-"+user+patient+server, patient
		id, err := r.addLaunch(ctx, &tok, &identity{Aud: server, FHIRUser: user, Subject: user})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ids := func() []string {
		slots, _ := r.launchesOf(ctx)
		var out []string
		for _, s := range slots {
			out = append(out, s.id)
		}
		return out
	}
	a1 := add("dr-a", "P1", aud)
	a2 := add("dr-a", "P2", aud)
	unknown := add("", "P3", aud)
	elsewhere := add("dr-x", "P4", "https://other.example/fhir")
	b1 := add("dr-b", "P1", aud)
	got := ids()
	want := []string{unknown, elsewhere, b1}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("launches after dr-b's login: %v, want %v (dr-a's %s and %s ended)", got, want, a1, a2)
	}
}
