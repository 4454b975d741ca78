package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func rewriteAll(t testing.TB, body string, rewrite func(string) string) (string, error) {
	t.Helper()
	out, err := io.ReadAll(rewriteBundleLinks(io.NopCloser(strings.NewReader(body)), rewrite))
	return string(out), err
}

func TestRewriteBundleLinks(t *testing.T) {
	mark := func(s string) string { return "P:" + s }
	for _, tc := range []struct {
		name, in, want string
	}{
		{"links and fullUrls", `{"resourceType":"Bundle","link":[{"relation":"next","url":"a"}],"entry":[{"fullUrl":"b","resource":{"resourceType":"Patient","id":"1"}}]}`,
			`{"resourceType":"Bundle","link":[{"relation":"next","url":"P:a"}],"entry":[{"fullUrl":"P:b","resource":{"resourceType":"Patient","id":"1"}}]}`},
		{"resourceType not first", `{"link":[{"url":"a"}],"resourceType":"Bundle"}`, `{"link":[{"url":"P:a"}],"resourceType":"Bundle"}`},
		{"nested links untouched", `{"resourceType":"Bundle","entry":[{"resource":{"link":[{"url":"a"}],"fullUrl":"c"},"link":[{"url":"d"}]}]}`,
			`{"resourceType":"Bundle","entry":[{"resource":{"link":[{"url":"a"}],"fullUrl":"c"},"link":[{"url":"d"}]}]}`},
		{"non-string url untouched", `{"resourceType":"Bundle","link":[{"url":7},{"url":null},{"url":["x"]}]}`, `{"resourceType":"Bundle","link":[{"url":7},{"url":null},{"url":["x"]}]}`},
		{"numbers keep their text", `{"resourceType":"Bundle","total":1.50e+3,"n":-0,"b":[true,false,null]}`, `{"resourceType":"Bundle","total":1.50e+3,"n":-0,"b":[true,false,null]}`},
		{"white space is kept", "{ \"resourceType\" : \"Bundle\" ,\n \"link\" : [ { \"url\" : \"a\" } ] }", "{ \"resourceType\" : \"Bundle\" ,\n \"link\" : [ { \"url\" : \"P:a\" } ] }"},
		{"escapes are read, and kept where nothing changes", `{"resourceType":"Bundle","link":[{"u\u0072l":"\u0061","x":"<\u0061>"}]}`, `{"resourceType":"Bundle","link":[{"u\u0072l":"P:a","x":"<\u0061>"}]}`},
		{"response.location", `{"resourceType":"Bundle","entry":[{"response":{"location":"a","etag":"b"},"request":{"location":"c"}}]}`,
			`{"resourceType":"Bundle","entry":[{"response":{"location":"P:a","etag":"b"},"request":{"location":"c"}}]}`},
		{"other resources byte for byte", `{ "resourceType":"Patient", "link":[{"url":"a"}] }`, `{ "resourceType":"Patient", "link":[{"url":"a"}] }`},
		{"not an object byte for byte", ` ["a"]`, ` ["a"]`},
		{"empty body", ``, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rewriteAll(t, tc.in, mark)
			if err != nil || got != tc.want {
				t.Errorf("got %s, %v\nwant %s", got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{`{"resourceType":"Bundle","link":[}`, `{"resourceType":"Bundle"} {}`, `{"resourceType":"Bundle"`} {
		if _, err := rewriteAll(t, bad, mark); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestSniffBundleWaitsOnlyForWhatItNeeds(t *testing.T) {
	// A body that arrives a byte at a time is decided as soon as its first
	// member is known, not after sniffLimit bytes.
	for _, tc := range []struct {
		in     string
		bundle bool
		read   int
	}{
		{`{"resourceType":"Bundle",`, true, len(`{"resourceType":"Bundle"`)},
		{`{"resourceType":"Patient",`, false, len(`{"resourceType":"P`)},
		{`{"id":"1",`, true, len(`{"i`)},
		{`[1,2]`, false, 1},
	} {
		r := &oneByteReader{s: tc.in}
		head, bundle := sniffBundle(r, make([]byte, 0, sniffLimit))
		if bundle != tc.bundle || len(head) != tc.read {
			t.Errorf("%s: bundle %v after %d bytes, want %v after %d", tc.in, bundle, len(head), tc.bundle, tc.read)
		}
	}
}

type oneByteReader struct{ s string }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	p[0] = r.s[0]
	r.s = r.s[1:]
	return 1, nil
}

// FuzzRewriteBundleLinks: whatever a FHIR server answers, the rewriter
// changes nothing but the strings it is asked to rewrite, and valid JSON
// stays valid.
func FuzzRewriteBundleLinks(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Bundle","link":[{"relation":"next","url":"https://x/R4/Patient?page=2"}],"entry":[{"fullUrl":"https://x/R4/Patient/1"}]}`,
		`{"resourceType":"Patient","id":"1"}`,
		`{"link":[{"url":"a"}],"entry":[{"fullUrl":"b"}],"resourceType":"Bundle","n":1e400}`,
		`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Bundle","link":[{"url":"a"}]}}]}`,
		`[]`, `"x"`, `{`, ``,
		`{"resourceType":"Bundle","entry":[{"fullUrl":"https://x/R4/a/../../b"},{"fullUrl":"https://x/R4/P\u0061tient/1"},{"fullUrl":"https://x/R4/P?a&b"},{"response":{"location":"https://x/R4/Patient/1/_history/2"}}]}`,
	} {
		f.Add([]byte(s))
	}
	// The proxy's rewrite, with its fast path and without, and with the
	// input in whole and in random reads (links and keys cut or not).
	p := &proxy{from: "https://x/R4", to: "/fhir/"}
	f.Fuzz(func(t *testing.T, in []byte) {
		slow, slowErr := rewriteAll(t, string(in), p.rewriteBodyURL)
		cut := &randomReads{s: string(in), rng: rand.New(rand.NewPCG(uint64(len(in)), 18))}
		body, _ := sniffAndRewrite(io.NopCloser(cut), p.rewriteBodyURL, p.appendBodyURL)
		fast, fastErr := io.ReadAll(body)
		if fastErr != slowErr || slowErr == nil && string(fast) != slow { // a malformed body's output depends on the reads
			t.Fatalf("%q: with the fast path %q, %v; without %q, %v", in, fast, fastErr, slow, slowErr)
		}
		same, err := rewriteAll(t, string(in), func(s string) string { return s })
		if !json.Valid(in) {
			return
		}
		if err != nil {
			t.Fatalf("valid JSON %q: %v", in, err)
		}
		if !json.Valid([]byte(same)) {
			t.Fatalf("valid JSON %q became %q", in, same)
		}
		var a, b any
		decode := func(s []byte, v *any) {
			d := json.NewDecoder(bytes.NewReader(s))
			d.UseNumber()
			if err := d.Decode(v); err != nil {
				t.Fatal(err)
			}
		}
		decode(in, &a)
		decode([]byte(same), &b)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("the identity rewrite changed %q into %q", in, same)
		}
		marked, err := rewriteAll(t, string(in), func(s string) string { return s + "#" })
		if err != nil || !json.Valid([]byte(marked)) {
			t.Fatalf("rewriting %q gave %q, %v", in, marked, err)
		}
	})
}

// bigStringBundle is a Bundle with one string of n bytes (an inline
// attachment), generated as it is read.
type bigStringBundle struct {
	head, tail string
	n          int
}

func (b *bigStringBundle) Read(p []byte) (int, error) {
	switch {
	case b.head != "":
		k := copy(p, b.head)
		b.head = b.head[k:]
		return k, nil
	case b.n > 0:
		k := min(len(p), b.n)
		for i := range k {
			p[i] = 'A' + byte(i%26)
		}
		b.n -= k
		return k, nil
	case b.tail != "":
		k := copy(p, b.tail)
		b.tail = b.tail[k:]
		return k, nil
	}
	return 0, io.EOF
}

// TestRewriteBundleLinksMemory: the heap the rewriter uses does not grow
// with a value's size: a 64 MiB string in a Bundle, in a link's place or
// elsewhere, streams through.
func TestRewriteBundleLinksMemory(t *testing.T) {
	const size = 64 << 20
	for name, b := range map[string]func() *bigStringBundle{
		"attachment": func() *bigStringBundle {
			return &bigStringBundle{`{"resourceType":"Bundle","entry":[{"fullUrl":"a","resource":{"resourceType":"Binary","data":"`, `"}}]}`, size}
		},
		"link": func() *bigStringBundle {
			return &bigStringBundle{`{"resourceType":"Bundle","link":[{"url":"`, `"}]}`, size}
		},
		"key": func() *bigStringBundle {
			return &bigStringBundle{`{"resourceType":"Bundle","link":[{"`, `":1}]}`, size}
		},
	} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			n, err := io.Copy(io.Discard, rewriteBundleLinks(io.NopCloser(b()), func(s string) string { return "P:" + s }))
			runtime.ReadMemStats(&after)
			if err != nil || n < size {
				t.Fatalf("copied %d bytes: %v", n, err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("rewriting a Bundle with a %d MiB string allocated %d KiB, want under 1 MiB", size>>20, alloc>>10)
			}
		})
	}
}

// TestRewriteBundleLinksSkipsResources: what the rewriter skips sixteen
// bytes at a time (each entry's resource) it follows exactly, whatever
// its strings hold (brackets, quotes and backslashes, escaped, at any
// offset) and wherever the reads cut it: only the entries' fullUrls
// change, and a mismatched bracket deep in a resource is an error.
func TestRewriteBundleLinksSkipsResources(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 1))
	const alphabet = `ab{}[]"\ y_/`
	randString := func() string {
		s := make([]byte, rng.IntN(40))
		for i := range s {
			s[i] = alphabet[rng.IntN(len(alphabet))]
		}
		enc, _ := json.Marshal(string(s))
		return string(enc)
	}
	var value func(depth int) string
	value = func(depth int) string {
		switch n := rng.IntN(6); {
		case depth > 4 || n == 0:
			return randString()
		case n == 1:
			return []string{"1", "-2.5e3", "true", "false", "null"}[rng.IntN(5)]
		case n <= 3:
			var b strings.Builder
			b.WriteString("{")
			for i := range rng.IntN(4) {
				if i > 0 {
					b.WriteString(",")
				}
				key := randString()
				if rng.IntN(4) == 0 {
					key = `"fullUrl"` // not an entry's: stays
				}
				b.WriteString(key + ":" + value(depth+1))
			}
			return b.String() + "}"
		default:
			var b strings.Builder
			b.WriteString("[ ")
			for i := range rng.IntN(4) {
				if i > 0 {
					b.WriteString(" , ")
				}
				b.WriteString(value(depth + 1))
			}
			return b.String() + "]"
		}
	}
	for round := range 200 {
		var in, want strings.Builder
		both := func(s string) { in.WriteString(s); want.WriteString(s) }
		both(`{"resourceType":"Bundle","entry":[`)
		for i := range 1 + rng.IntN(30) {
			if i > 0 {
				both(",")
			}
			url := randString()
			var s string
			json.Unmarshal([]byte(url), &s)
			enc, _ := json.Marshal("P:" + s)
			in.WriteString(`{"fullUrl":` + url)
			want.WriteString(`{"fullUrl":` + string(enc))
			both(`,"resource":` + value(0) + `,"search":{"mode":"match"}}`)
		}
		both(`]}`)
		if !json.Valid([]byte(in.String())) {
			t.Fatalf("generated invalid JSON %s", in.String())
		}
		for _, src := range []io.Reader{
			strings.NewReader(in.String()),
			&randomReads{s: in.String(), rng: rng},
		} {
			got, err := io.ReadAll(rewriteBundleLinks(io.NopCloser(src), func(s string) string { return "P:" + s }))
			if err != nil || string(got) != want.String() {
				t.Fatalf("round %d: got %s, %v\nwant %s", round, got, err, want.String())
			}
		}
		// The same Bundle with its last resource's last "]" or "}" turned
		// into the other kind is malformed.
		bad := in.String()
		if i := strings.LastIndexAny(bad[:strings.LastIndex(bad, `,"search"`)], "]}"); i >= 0 {
			b := []byte(bad)
			b[i] ^= '}' ^ ']'
			if !json.Valid(b) {
				if _, err := io.ReadAll(rewriteBundleLinks(io.NopCloser(&randomReads{s: string(b), rng: rng}), func(s string) string { return s })); !errors.Is(err, errNotJSON) {
					t.Fatalf("round %d: %s: err = %v, want errNotJSON", round, b, err)
				}
			}
		}
	}
}

// randomReads returns s in reads of 1 to 100 bytes.
type randomReads struct {
	s   string
	rng *rand.Rand
}

func (r *randomReads) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+r.rng.IntN(100))], r.s)
	r.s = r.s[n:]
	return n, nil
}

// TestRewriteBundleLinksReadSizes: however large the reads the rewriter is
// asked for (small ones go through its own buffer, large ones are written
// straight into), the output is the same, whether the links shrink (the
// proxy's rewrite) or grow past what a read holds.
func TestRewriteBundleLinksReadSizes(t *testing.T) {
	p := &proxy{from: "https://x/R4", to: "/fhir/"}
	bundle := searchset(p.from, 1<<20)
	grow := func(s string) string { return s + "#" + strings.Repeat("g", 200) }
	links := bytes.Count(bundle, []byte(`"fullUrl"`)) + 2 // and self and next
	for name, rw := range map[string]struct {
		rewrite    func(string) string
		appendLink appendLinkFunc
		mark       string // in each rewritten link
	}{
		"proxy": {p.rewriteBodyURL, p.appendBodyURL, `"/fhir/Observation`},
		"grow":  {grow, nil, "#ggg"},
	} {
		var want []byte
		for _, size := range []int{7, 4 << 10, 64 << 10, 64<<10 + 1, 256 << 10, 4 << 20} {
			body, _ := sniffAndRewrite(io.NopCloser(bytes.NewReader(bundle)), rw.rewrite, rw.appendLink)
			var got []byte
			buf := make([]byte, size)
			for {
				n, err := body.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s, reads of %d: %v", name, size, err)
				}
			}
			body.Close()
			if want == nil {
				want = got
				if n := bytes.Count(want, []byte(rw.mark)); !json.Valid(want) || n != links {
					t.Fatalf("%s: %d links of %d rewritten", name, n, links)
				}
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: reads of %d gave another output than reads of 7", name, size)
			}
		}
	}
}
