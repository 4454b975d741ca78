package core_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// panicky is an Observer whose method named in panicIn panics, once.
type panicky struct {
	panicIn string
	done    atomic.Bool
}

func (o *panicky) maybe(m string) {
	if o.panicIn == m && o.done.CompareAndSwap(false, true) {
		panic("observer " + m + " broke")
	}
}

func (o *panicky) StartRefresh(ctx context.Context) (context.Context, func()) {
	o.maybe("StartRefresh")
	return ctx, func() { o.maybe("end") }
}
func (o *panicky) Refreshed(context.Context, core.RefreshInfo)          { o.maybe("Refreshed") }
func (o *panicky) RefreshFailed(context.Context, core.RefreshErrorInfo) { o.maybe("RefreshFailed") }
func (o *panicky) Reauth(context.Context, core.ReauthInfo)              { o.maybe("Reauth") }
func (o *panicky) Resend(context.Context)                               { o.maybe("Resend") }

// sentRefreshTokens counts, per refresh token, how often the token
// endpoint was sent it.
type sentRefreshTokens struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *sentRefreshTokens) hook(invalid *atomic.Bool) func(http.ResponseWriter, *http.Request, http.Handler) {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		r.ParseForm()
		s.mu.Lock()
		if s.n == nil {
			s.n = map[string]int{}
		}
		s.n[r.PostForm.Get("refresh_token")]++
		s.mu.Unlock()
		if invalid.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		next.ServeHTTP(w, r)
	}
}

func (s *sentRefreshTokens) most() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := 0
	for _, n := range s.n {
		m = max(m, n)
	}
	return m
}

// TestAttackObserverPanic: an Observer (app code) that panics in any of
// its methods panics in the request that called Token, as a handler's
// own panic would (net/http recovers it), not in a goroutine of its own
// that no one can recover and that ends the process; and it breaks no
// promise: no refresh token is sent twice, and the grant is not wedged
// (the next request refreshes, or learns it must authorize again).
func TestAttackObserverPanic(t *testing.T) {
	for _, tc := range []struct {
		method  string
		invalid bool // the token endpoint answers invalid_grant
	}{
		{"StartRefresh", false},
		{"Refreshed", false},
		{"end", false},
		{"RefreshFailed", true},
		{"Reauth", true},
	} {
		t.Run(tc.method, func(t *testing.T) {
			obs := &panicky{panicIn: tc.method}
			f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.Observer = obs })
			var sent sentRefreshTokens
			var invalid atomic.Bool
			invalid.Store(tc.invalid)
			f.srv.SetTokenHook(sent.hook(&invalid))
			session, _ := f.login()
			f.clock.Advance(time.Hour)
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				f.token(session)
			}()
			if recovered == nil {
				t.Fatalf("the Observer's panic in %s did not reach the caller of Token", tc.method)
			}
			if !obs.done.Load() {
				t.Fatal("the Observer did not panic")
			}
			for range 3 {
				tok, err := f.token(session)
				switch {
				case tc.invalid && !errors.Is(err, core.ErrReauthRequired):
					t.Fatalf("after the panic: %v, want ErrReauthRequired", err)
				case !tc.invalid && (err != nil || tok.AccessToken == ""):
					t.Fatalf("after the panic: %v, want a token", err)
				}
			}
			if n := sent.most(); n != 1 {
				t.Errorf("a refresh token was sent %d times", n)
			}
		})
	}
}

// rawUpstream is a FHIR server that answers every request with the bytes
// answer returns for the request's Authorization header, as they are.
func rawUpstream(t *testing.T, answer func(auth string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.WriteString(c, answer(req.Header.Get("Authorization")))
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/fhir"
}

// TestAttackMalformedUpstreamAnswerLogsNoToken: a careless upstream that
// echoes the request's Authorization header into an answer the transport
// cannot parse (a header line without a colon, a bad status line, a bad
// Content-Length) gets a 502, and neither the browser nor the log sees
// the token: net/http quotes the bad line in its error.
func TestAttackMalformedUpstreamAnswerLogsNoToken(t *testing.T) {
	for name, answer := range map[string]func(string) string{
		"header line": func(auth string) string { return "HTTP/1.1 200 OK\r\nX-Echo " + auth + "\r\n\r\n" },
		"status line": func(auth string) string { return "HTTP/1.1 2" + auth + "\r\n\r\n" },
		"status code": func(auth string) string { return "HTTP/1.1 " + auth + "\r\n\r\n" },
		"length":      func(auth string) string { return "HTTP/1.1 200 OK\r\nContent-Length: " + auth + "\r\n\r\n" },
		"chunked": func(auth string) string {
			return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + auth + "\r\n"
		},
		"header value": func(auth string) string { return "HTTP/1.1 200 OK\r\nX-Echo: " + auth + "\x00\r\n\r\n" },
	} {
		t.Run(name, func(t *testing.T) {
			var seen atomic.Value
			up := rawUpstream(t, func(auth string) string {
				seen.Store(strings.TrimPrefix(auth, "Bearer "))
				return answer(auth)
			})
			a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{Upstream: up})
			req, _ := http.NewRequest("GET", a.app.URL+"/fhir/Patient/1", nil)
			req.Header.Set("X-CSRF", "1")
			var body string
			if resp, err := a.browser.Do(req); err == nil { // the proxy may cut a broken answer
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
			}
			a.app.Close() // waits for the handler and its log lines
			tok, _ := seen.Load().(string)
			if len(tok) < 8 {
				t.Fatal("no token reached the upstream")
			}
			if strings.Contains(body, tok) {
				t.Error("the token reached the browser")
			}
			if logs := a.logs.String(); strings.Contains(logs, tok) || strings.Contains(logs, tok[:len(tok)/2]) {
				t.Errorf("the token was logged:\n%s", strings.ReplaceAll(logs, tok, "<TOKEN>"))
			}
		})
	}
}

// TestAttackMalformedTokenAnswerLogsNoRefreshToken: a token endpoint
// that echoes the request's form (the refresh token) into an answer the
// transport cannot parse has the refresh fail as transient, and the log
// and the hooks' error do not hold the refresh token.
func TestAttackMalformedTokenAnswerLogsNoRefreshToken(t *testing.T) {
	var failures []core.RefreshErrorInfo
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.OnRefreshError = func(i core.RefreshErrorInfo) { failures = append(failures, i) }
	})
	session, tok := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		r.ParseForm()
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Echo "+r.PostForm.Encode()+" "+r.PostForm.Get("refresh_token")+"\r\n\r\n")
	})
	f.clock.Advance(time.Hour)
	if _, err := f.token(session); !errors.Is(err, core.ErrTransient) {
		t.Fatalf("err = %v, want ErrTransient", err)
	}
	rt := tok.RefreshToken
	if strings.Contains(f.logs.String(), rt) {
		t.Errorf("the refresh token was logged:\n%s", strings.ReplaceAll(f.logs.String(), rt, "<RT>"))
	}
	for _, i := range failures {
		if strings.Contains(i.Err.Error(), rt) {
			t.Errorf("OnRefreshError's error holds the refresh token")
		}
	}
}

// TestAttackPaddedUpstreamAnswerLogsNoToken: an upstream answer with
// more bytes than its Content-Length says (or a body after a 204 or 304),
// the surplus echoing the token, reaches neither the browser nor
// Config.Logger. (net/http's Transport logs the first of those bytes,
// which it finds on the idle connection, to the standard library's
// logger: docs/fhir-proxy.md says so; the proxy cannot stop it short of
// a connection per request.)
func TestAttackPaddedUpstreamAnswerLogsNoToken(t *testing.T) {
	for name, answer := range map[string]func(string) string{
		"content-length": func(auth string) string {
			return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" + `{"echo":"` + auth + `"}`
		},
		"204": func(auth string) string { return "HTTP/1.1 204 No Content\r\n\r\n" + `{"echo":"` + auth + `"}` },
		"304": func(auth string) string { return "HTTP/1.1 304 Not Modified\r\n\r\n" + `{"echo":"` + auth + `"}` },
	} {
		t.Run(name, func(t *testing.T) {
			std := &lockedWriter{w: &strings.Builder{}}
			saved := log.Writer()
			log.SetOutput(std)
			defer log.SetOutput(saved)
			var seen atomic.Value
			up := rawUpstream(t, func(auth string) string {
				seen.Store(strings.TrimPrefix(auth, "Bearer "))
				return answer(auth)
			})
			a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{Upstream: up})
			resp := a.do("GET", "/fhir/Patient/1", nil)
			body := readAll(t, resp)
			tok, _ := seen.Load().(string)
			if len(tok) < 8 {
				t.Fatal("no token reached the upstream")
			}
			if strings.Contains(body, tok) {
				t.Error("the token reached the browser")
			}
			time.Sleep(100 * time.Millisecond) // the transport's read loop logs on its own
			a.app.Close()
			if logs := a.logs.String(); strings.Contains(logs, tok[:len(tok)/2]) {
				t.Errorf("the token was logged to Config.Logger:\n%s", strings.ReplaceAll(logs, tok, "<TOKEN>"))
			}
			if !strings.Contains(std.String(), "Unsolicited response") {
				t.Log("net/http no longer logs the surplus: docs/fhir-proxy.md can drop its warning")
			}
		})
	}
}

// reentrant is an Observer that asks the Refresher for the session's
// token from within its methods, as app code behind an Observer might.
type reentrant struct {
	r    *core.Refresher
	errs chan error
}

func (o *reentrant) StartRefresh(ctx context.Context) (context.Context, func()) {
	_, err := o.r.Token(ctx)
	o.errs <- err
	return ctx, nil
}
func (o *reentrant) Refreshed(ctx context.Context, _ core.RefreshInfo)    {}
func (o *reentrant) RefreshFailed(context.Context, core.RefreshErrorInfo) {}
func (o *reentrant) Reauth(context.Context, core.ReauthInfo)              {}
func (o *reentrant) Resend(context.Context)                               {}

// TestAttackObserverCallsBackIntoRefresher: an Observer that asks for the
// token of the session being refreshed, from StartRefresh, gets an error
// at once instead of joining the very flight it holds up, which would
// never end and would wedge every later refresh of the grant.
func TestAttackObserverCallsBackIntoRefresher(t *testing.T) {
	obs := &reentrant{errs: make(chan error, 4)}
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.Observer = obs })
	obs.r = f.r
	session, _ := f.login()
	f.clock.Advance(time.Hour)
	done := make(chan error, 1)
	go func() {
		ctx := f.request(session)
		_, err := f.r.Token(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the refresh failed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a refresh whose Observer asks for the token never ends")
	}
	if err := <-obs.errs; err == nil {
		t.Error("the Observer's own Token call, inside the refresh, got a token")
	}
}

// TestAttackCutAnswerKeepsTheTokensStart: an upstream answer cut short
// (the connection drops inside a chunked body, or before its
// Content-Length) right after most of an echoed token does not hand the
// page that token's start: the mask held those bytes back, as a form may
// have been under way, and an answer that breaks off gets none of them.
func TestAttackCutAnswerKeepsTheTokensStart(t *testing.T) {
	for name, answer := range map[string]func(tok string) string{
		"chunked": func(tok string) string {
			part := `{"resourceType":"OperationOutcome","issue":[{"diagnostics":"` + tok[:len(tok)-1]
			return "HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nTransfer-Encoding: chunked\r\n\r\n" +
				strconv.FormatInt(int64(len(part)), 16) + "\r\n" + part + "\r\n"
		},
		"content-length": func(tok string) string {
			part := `{"resourceType":"OperationOutcome","issue":[{"diagnostics":"` + tok[:len(tok)-1]
			return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n" + part
		},
	} {
		t.Run(name, func(t *testing.T) {
			var seen atomic.Value
			up := rawUpstream(t, func(auth string) string {
				tok := strings.TrimPrefix(auth, "Bearer ")
				seen.Store(tok)
				return answer(tok)
			})
			a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{Upstream: up})
			req, _ := http.NewRequest("GET", a.app.URL+"/fhir/Patient/1", nil)
			req.Header.Set("X-CSRF", "1")
			var body []byte
			if resp, err := a.browser.Do(req); err == nil {
				body, _ = io.ReadAll(resp.Body) // what the page's stream reader saw before the cut
				resp.Body.Close()
			}
			tok, _ := seen.Load().(string)
			if len(tok) < 8 {
				t.Fatal("no token reached the upstream")
			}
			if strings.Contains(string(body), tok[:len(tok)/2]) {
				t.Errorf("the page got the token's start from an answer cut after it (%d bytes)", len(body))
			}
		})
	}
}

// TestAttackObserverPanicInResendKeepsTheClaim: the answer to a refresh
// was lost (the server may have rotated), and the Observer panics when
// told of the resend. The Coordinator claim on the refresh token stays
// until its outcome is known or the claim expires, as after any unknown
// outcome: another replica does not send the same refresh token meanwhile.
func TestAttackObserverPanicInResendKeepsTheClaim(t *testing.T) {
	coord := newMemCoordinator()
	obs := &panicky{panicIn: "Resend"}
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.Coordinator, c.Observer, c.ResendAfter = coord, obs, 10*time.Millisecond
	})
	// The other replica waits for the claim for a second at most.
	sm := scs.New()
	sm.Store = f.sm.Store
	o := f.srv.Options()
	other, err := core.New(core.Config{TokenURL: f.srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: sm, Now: f.clock.Now, Coordinator: coord, RefreshTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rep := &replicas{fixture: f, sms: []*scs.SessionManager{f.sm, sm}, rs: []*core.Refresher{f.r, other}}
	session, _ := f.login()
	f.srv.SetTokenHook(lostOnce())
	f.clock.Advance(time.Hour)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the Observer's panic did not reach the caller")
			}
		}()
		rep.token(0, session)
	}()
	if !obs.done.Load() {
		t.Fatal("no resend was told of")
	}
	rep.token(1, session) // the other replica, while the claim holds
	if n := f.srv.Reuses(); n != 0 {
		t.Errorf("the server saw %d reused refresh tokens: the claim was let go of at the panic", n)
	}
}

// TestAttackPooledBuffersKeepAnswersApart: many sessions' answers at once
// through the proxy, of every size around the pooled buffers' (the mask's
// 32 KiB, the rewriter's), Bundles and not, each echoing its own token,
// some abandoned half read: every answer the page reads is its own, whole
// (its token masked), with no byte of another answer or another session's
// token, though their buffers go back to the pools and on to the next.
func TestAttackPooledBuffersKeepAnswersApart(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	sizes := []int{1, 511, 512, 4 << 10, 32<<10 - 7, 32 << 10, 32<<10 + 9, 100 << 10, 300 << 10}
	var mu sync.Mutex
	tokens := map[string]bool{}
	// The upstream's answer to /Observation?n=ID&size=S&bundle=B: S bytes
	// of ID's marker, with the token at both ends.
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		tokens[tok] = true
		mu.Unlock()
		q := r.URL.Query()
		size, _ := strconv.Atoi(q.Get("size"))
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, answerOf(q.Get("n"), size, q.Get("bundle") == "1", tok))
	})
	browsers := make([]*http.Client, 6)
	for i := range browsers {
		jar, _ := cookiejar.New(nil)
		browsers[i] = &http.Client{Jar: jar}
		resp, err := browsers[i].Get(a.app.URL + "/login")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("login: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	var wg sync.WaitGroup
	var bad atomic.Int64
	for b, browser := range browsers {
		for k := range 3 * len(sizes) {
			wg.Go(func() {
				id := fmt.Sprintf("m%02d%03d", b, k)
				size, bundle := sizes[k%len(sizes)], k%2
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/fhir/Observation?n=%s&size=%d&bundle=%d", a.app.URL, id, size, bundle), nil)
				req.Header.Set("X-CSRF", "1")
				resp, err := browser.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				if k%5 == 4 { // the page stops reading halfway
					io.CopyN(io.Discard, resp.Body, int64(size/2))
					return
				}
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Error(err)
					return
				}
				text := string(body)
				foreign := strings.NewReplacer(id, "", "*", "").Replace(text)
				if strings.Contains(foreign, "m0") || strings.Contains(foreign, "m1") {
					bad.Add(1)
					t.Errorf("answer %s holds another answer's bytes", id)
				}
				mu.Lock()
				for tok := range tokens {
					if strings.Contains(text, tok) {
						bad.Add(1)
						t.Errorf("answer %s holds a token", id)
					}
				}
				mu.Unlock()
				if want := strings.Count(answerOf(id, size, bundle == 1, ""), id); strings.Count(text, id) != want {
					t.Errorf("answer %s has %d of its markers, want %d", id, strings.Count(text, id), want)
				}
			})
		}
	}
	wg.Wait()
	if len(tokens) != len(browsers) {
		t.Errorf("%d tokens reached the upstream, want one per session (%d)", len(tokens), len(browsers))
	}
}

// answerOf is the upstream's answer for id: size bytes (about) of its
// marker, as a Bundle or an OperationOutcome, with tok at both ends.
func answerOf(id string, size int, bundle bool, tok string) string {
	fill := strings.Repeat(id+" ", size/(len(id)+1)+1)
	if bundle {
		return `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"x?t=` + tok + `"}],` +
			`"entry":[{"resource":{"resourceType":"Basic","text":{"div":"` + fill + `"}}}],"id":"` + tok + `"}`
	}
	return `{"resourceType":"OperationOutcome","issue":[{"diagnostics":"` + tok + " " + fill + tok + `"}]}`
}

// TestAttackMaskByteByByte: an upstream that streams its answer one byte
// per write, flushed (each a read of its own at the proxy, chunked, so
// the mask holds a form's start across hundreds of reads), with the
// token in every form the mask knows, in an OperationOutcome and in a
// Bundle (through the link rewriter): the page gets none of them, and an
// answer the rewriter does not touch keeps its length.
func TestAttackMaskByteByByte(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	var tok atomic.Value
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		tok.Store(token)
		forms := tokenForms(token)
		i, _ := strconv.Atoi(r.URL.Query().Get("form"))
		body := `{"resourceType":"OperationOutcome","issue":[{"diagnostics":"` + forms[i].text + `"}]}`
		if r.URL.Query().Get("bundle") == "1" {
			body = `{"resourceType":"Bundle","link":[{"relation":"self","url":"` + forms[i].text + `"}],"entry":[{"fullUrl":"x","resource":{"resourceType":"Basic","id":"` + forms[i].text + `"}}]}`
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		rc := http.NewResponseController(w)
		for j := range len(body) {
			io.WriteString(w, body[j:j+1])
			rc.Flush()
		}
	})
	resp := a.do("GET", "/fhir/Basic?form=0", nil)
	readAll(t, resp)
	token, _ := tok.Load().(string)
	if token == "" {
		t.Fatal("no token reached the upstream")
	}
	for i, form := range tokenForms(token) {
		for _, bundle := range []string{"0", "1"} {
			resp := a.do("GET", fmt.Sprintf("/fhir/Basic?form=%d&bundle=%s", i, bundle), nil)
			body := readAll(t, resp)
			inner := form.text[1 : len(form.text)-1]
			if strings.Contains(body, inner) || strings.Contains(body, token) {
				t.Errorf("%s, Bundle %s: the page got the token", form.name, bundle)
			}
			if bundle == "0" && len(body) != len(`{"resourceType":"OperationOutcome","issue":[{"diagnostics":""}]}`)+len(form.text) {
				t.Errorf("%s: %d bytes, not the upstream's", form.name, len(body))
			}
		}
	}
}

// blocking is an Observer whose StartRefresh waits until release is
// closed.
type blocking struct{ release chan struct{} }

func (o *blocking) StartRefresh(ctx context.Context) (context.Context, func()) {
	<-o.release
	d, cancel := context.WithTimeout(ctx, time.Nanosecond) // a deadline, long past when the call is made
	return d, cancel
}
func (o *blocking) Refreshed(context.Context, core.RefreshInfo)          {}
func (o *blocking) RefreshFailed(context.Context, core.RefreshErrorInfo) {}
func (o *blocking) Reauth(context.Context, core.ReauthInfo)              {}
func (o *blocking) Resend(context.Context)                               {}

// TestAttackObserverBlocks: an Observer that blocks in StartRefresh holds
// up the refresh (as documented: keep it fast), but no caller waits past
// its own context, and once it returns, with a context whose deadline has
// passed, the call is made anyway (its deadline is ignored) and the grant
// goes on, its refresh token sent once.
func TestAttackObserverBlocks(t *testing.T) {
	obs := &blocking{release: make(chan struct{})}
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.Observer = obs })
	var sent sentRefreshTokens
	var invalid atomic.Bool
	f.srv.SetTokenHook(sent.hook(&invalid))
	session, _ := f.login()
	f.clock.Advance(time.Hour)
	ctx, cancel := context.WithTimeout(f.request(session), 200*time.Millisecond)
	defer cancel()
	if _, err := f.r.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a caller of a held-up refresh: %v, want its own deadline", err)
	}
	close(obs.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		tok, err := f.token(session)
		if err == nil && tok.AccessToken != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the Observer returned: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := sent.most(); n != 1 {
		t.Errorf("a refresh token was sent %d times", n)
	}
	f.checkNoReuse()
}
