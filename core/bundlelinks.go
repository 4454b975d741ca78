package core

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// rewriteBundleLinks returns body with the URLs of a FHIR JSON Bundle's
// link[].url and entry[].fullUrl passed through rewrite, as it streams: the
// output is flushed whenever the input has to be waited for, so a large
// Bundle reaches the browser as the upstream sends it. A body that is not a
// Bundle (its first member is another "resourceType") is passed through
// untouched, byte for byte.
func rewriteBundleLinks(body io.ReadCloser, rewrite func(string) string) io.ReadCloser {
	src := &sniffedBody{body: body}
	var isBundle bool
	src.head, isBundle = sniffBundle(body, src.buf[:0])
	if !isBundle {
		return src
	}
	pr, pw := io.Pipe()
	go func() {
		out := bufio.NewWriterSize(pw, 32<<10)
		err := transformBundle(out, &flushingReader{r: src, w: out}, rewrite)
		if err == nil {
			err = out.Flush()
		}
		body.Close()
		pw.CloseWithError(err)
	}()
	return pr
}

// sniffLimit bounds how much of a body is read to tell whether it is a
// Bundle.
const sniffLimit = 512

// sniffedBody is a body whose first bytes, head, were read to sniff it.
type sniffedBody struct {
	buf  [sniffLimit]byte
	head []byte // what is left of the sniffed bytes, in buf
	body io.ReadCloser
}

func (s *sniffedBody) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		return n, nil
	}
	return s.body.Read(p)
}

func (s *sniffedBody) Close() error { return s.body.Close() }

// sniffBundle reads the start of body into buf, as much as it takes (up to
// sniffLimit) to see its first member. isBundle is false only when the body
// certainly is not a Bundle: a JSON object whose first member is a
// resourceType other than "Bundle", or not an object at all.
func sniffBundle(body io.Reader, buf []byte) (head []byte, isBundle bool) {
	for len(buf) < sniffLimit {
		n, err := body.Read(buf[len(buf):sniffLimit])
		buf = buf[:len(buf)+n]
		if known, bundle := firstMemberSaysBundle(buf); known {
			return buf, bundle
		}
		if err != nil {
			return buf, false // the whole body: too short to be a Bundle
		}
	}
	return buf, true
}

// firstMemberSaysBundle looks at the start of a JSON text. known is false
// while more input is needed to decide.
func firstMemberSaysBundle(b []byte) (known, bundle bool) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return false, false
	}
	if b[0] != '{' {
		return true, false
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	const key = `"resourceType"`
	if len(b) < len(key) {
		return !bytes.HasPrefix([]byte(key), b), true
	}
	if !bytes.HasPrefix(b, []byte(key)) {
		return true, true // another first member: rewrite to be safe
	}
	b = bytes.TrimLeft(b[len(key):], " \t\r\n")
	if len(b) == 0 {
		return false, false
	}
	if b[0] != ':' {
		return true, true
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	const name = `"Bundle"`
	if len(b) < len(name) {
		return !bytes.HasPrefix([]byte(name), b), false
	}
	return true, bytes.HasPrefix(b, []byte(name))
}

// flushingReader flushes w before each read of r, so that what was written
// for the input read so far goes out while the next input is awaited.
type flushingReader struct {
	r io.Reader
	w *bufio.Writer
}

func (f *flushingReader) Read(p []byte) (int, error) {
	if f.w.Buffered() > 0 {
		if err := f.w.Flush(); err != nil {
			return 0, err
		}
	}
	return f.r.Read(p)
}

// errNotJSON: a body announced as JSON is not one JSON value.
var errNotJSON = errors.New("smartrefresh: proxy: the FHIR server's JSON answer is malformed")

// transformBundle copies the JSON value of src to out, token by token,
// passing the strings at link[].url and entry[].fullUrl of the top-level
// object through rewrite. Numbers keep their text; strings are escaped as
// encoding/json does.
func transformBundle(out *bufio.Writer, src io.Reader, rewrite func(string) string) error {
	dec := json.NewDecoder(src)
	dec.UseNumber()
	type frame struct {
		object bool
		n      int    // members or elements written
		key    string // in an object: the key of the value being read
		isKey  bool   // in an object: the next string is a key
	}
	var stack []frame
	// target reports whether a string value at the current place is a link
	// to rewrite: $.link[*].url or $.entry[*].fullUrl.
	target := func() bool {
		if len(stack) != 3 || !stack[0].object || stack[1].object || !stack[2].object {
			return false
		}
		switch stack[0].key {
		case "link":
			return stack[2].key == "url"
		case "entry":
			return stack[2].key == "fullUrl"
		}
		return false
	}
	// value prepares for a value (or key) at the current place: the comma
	// and, in an object, the colon after the key.
	value := func() {
		if len(stack) == 0 {
			return
		}
		f := &stack[len(stack)-1]
		if f.object {
			return // keys write their own comma; the colon follows the key
		}
		if f.n > 0 {
			out.WriteByte(',')
		}
		f.n++
	}
	done := func() {
		if len(stack) > 0 && stack[len(stack)-1].object {
			f := &stack[len(stack)-1]
			f.isKey = true
			f.n++
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) != 0 {
				return errNotJSON
			}
			return nil
		}
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.Join(errNotJSON, err)
		}
		if err != nil {
			return err // the body could not be read: not the server's JSON
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			if len(stack) == 0 {
				return errNotJSON
			}
			stack = stack[:len(stack)-1]
			out.WriteByte(byte(d))
			done()
			if len(stack) == 0 {
				return endOfValue(dec)
			}
			continue
		}
		if len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].isKey {
			f := &stack[len(stack)-1]
			if f.n > 0 {
				out.WriteByte(',')
			}
			f.key, f.isKey = tok.(string), false
			writeJSONString(out, f.key)
			out.WriteByte(':')
			continue
		}
		value()
		switch v := tok.(type) {
		case json.Delim:
			out.WriteByte(byte(v))
			stack = append(stack, frame{object: v == '{', isKey: v == '{'})
			continue
		case string:
			if target() {
				v = rewrite(v)
			}
			writeJSONString(out, v)
		case json.Number:
			out.WriteString(string(v))
		case bool:
			if v {
				out.WriteString("true")
			} else {
				out.WriteString("false")
			}
		case nil:
			out.WriteString("null")
		}
		done()
		if len(stack) == 0 {
			return endOfValue(dec)
		}
	}
}

// endOfValue checks that nothing but white space follows the one top-level
// value, as encoding/json would.
func endOfValue(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return errNotJSON
	}
	return nil
}

// writeJSONString writes s as a JSON string.
func writeJSONString(out *bufio.Writer, s string) {
	b, _ := json.Marshal(s) // a string always encodes
	out.Write(b)
}
