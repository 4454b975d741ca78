package core

import (
	"bytes"
	"fmt"
	"io"
	"syscall"
	"testing"
)

// searchset returns a FHIR searchset Bundle of at least size bytes, with
// a fullUrl and a link per entry, and its next link, under base.
func searchset(base string, size int) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"resourceType":"Bundle","type":"searchset","total":100000,"link":[{"relation":"self","url":"` + base + `/Observation?_count=100000"},{"relation":"next","url":"` + base + `/Observation?_count=100000&page=2"}],"entry":[`)
	for i := 0; buf.Len() < size; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"fullUrl":"%s/Observation/%d","resource":{"resourceType":"Observation","id":"%d","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/123"},"effectiveDateTime":"2026-12-02T10:00:00Z","valueQuantity":{"value":%d,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}},"search":{"mode":"match"}}`, base, i, i, 60+i%40)
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// BenchmarkRewriteBundleLinks runs the proxy's Bundle rewriter alone, with
// no HTTP around it, over the Bundle of BenchmarkProxyBundle (12 MiB,
// 25,000 fullUrls), read as the proxy's ReverseProxy reads it (into its
// copyBuffers, 256 KiB): the
// rewriter's own cost, which BenchmarkProxyBundle shows next to the
// proxy's.
func BenchmarkRewriteBundleLinks(b *testing.B) {
	p := &proxy{from: "http://127.0.0.1:41234/fhir", to: "/fhir/"}
	bundle := searchset(p.from, 12<<20)
	buf := copyBuffers{}.Get()
	b.SetBytes(int64(len(bundle)))
	b.ReportAllocs()
	cpu := processCPU()
	defer func() { b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op") }()
	for b.Loop() {
		body, rewritten := sniffAndRewrite(io.NopCloser(bytes.NewReader(bundle)), p.rewriteBodyURL, p.appendBodyURL)
		if !rewritten {
			b.Fatal("not taken for a Bundle")
		}
		n := 0
		for {
			k, err := body.Read(buf)
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		body.Close()
		if n < len(bundle)*9/10 {
			b.Fatalf("%d bytes out of %d", n, len(bundle))
		}
	}
}

// processCPU returns the CPU time the process (the benchmark, and in
// BenchmarkProxyBundle the app and the upstream, all in it) has used, in
// nanoseconds: on a shared machine it moves far less than the wall clock.
func processCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
