package smarttest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// seedResources stores the launch context patient, Amy V. Shaw, and the
// encounter, if any.
func (s *Server) seedResources() {
	p := s.opts.Patient
	s.resources["Patient/"+p] = map[string]any{
		"resourceType": "Patient",
		"id":           p,
		"active":       true,
		"name": []any{map[string]any{
			"use":    "official",
			"given":  []any{"Amy", "V."},
			"family": "Shaw",
		}},
		"gender":    "female",
		"birthDate": "1987-02-20",
	}
	for _, id := range s.opts.LaunchPatients {
		if id == p {
			continue
		}
		s.resources["Patient/"+id] = map[string]any{
			"resourceType": "Patient",
			"id":           id,
			"active":       true,
			"name":         []any{map[string]any{"use": "official", "given": []any{"Test"}, "family": "Patient-" + id}},
		}
	}
	if e := s.opts.Encounter; e != "" {
		s.resources["Encounter/"+e] = map[string]any{
			"resourceType": "Encounter",
			"id":           e,
			"status":       "finished",
			"class": map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
				"code":   "AMB",
			},
			"subject": map[string]any{"reference": "Patient/" + p},
		}
	}
}

// serveFHIR counts a FHIR request, then hands it to the FHIR hook, if any,
// or straight to fhir.
func (s *Server) serveFHIR(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.fhirCalls++
	h := s.fhirHook
	s.mu.Unlock()

	if h != nil {
		h(w, r, http.HandlerFunc(s.fhir))
		return
	}
	s.fhir(w, r)
}

// fhir is the FHIR server proper: metadata, read, search and create.
func (s *Server) fhir(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/fhir/")
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	if path == "metadata" {
		if !get {
			outcome(w, http.StatusMethodNotAllowed, "not-supported", "metadata only answers GET")
			return
		}
		writeFHIR(w, http.StatusOK, s.capabilityStatement())
		return
	}
	if !s.authorized(w, r) {
		return
	}

	parts := strings.Split(path, "/")
	switch {
	case len(parts) == 1 && resourceType(parts[0]) && get:
		s.search(w, r, parts[0])
	case len(parts) == 1 && resourceType(parts[0]) && r.Method == http.MethodPost:
		s.create(w, r, parts[0])
	case len(parts) == 2 && resourceType(parts[0]) && get:
		s.read(w, parts[0], parts[1])
	case len(parts) <= 2 && resourceType(parts[0]):
		outcome(w, http.StatusMethodNotAllowed, "not-supported", r.Method+" is not supported here")
	default:
		outcome(w, http.StatusNotFound, "not-found", "unknown path /fhir/"+path)
	}
}

// authorized reports whether r carries a valid access token, answering 401
// if it does not.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		// RFC 6750 section 3.1: no error code when no token was sent.
		w.Header().Set("WWW-Authenticate", "Bearer")
		outcome(w, http.StatusUnauthorized, "login", "a Bearer access token is required")
		return false
	}

	now := s.now()
	s.mu.Lock()
	a, ok := s.access[token]
	valid := ok && a.valid(now)
	s.mu.Unlock()
	if !valid {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		outcome(w, http.StatusUnauthorized, "login", "the access token is unknown, expired or revoked")
		return false
	}
	return true
}

// read answers GET /fhir/{type}/{id}.
func (s *Server) read(w http.ResponseWriter, typ, id string) {
	s.mu.Lock()
	res, ok := s.resources[typ+"/"+id]
	s.mu.Unlock()
	if !ok {
		outcome(w, http.StatusNotFound, "not-found", typ+"/"+id+" is not known")
		return
	}
	writeFHIR(w, http.StatusOK, res)
}

// search answers GET /fhir/{type}, matching _id and, for patients, name.
func (s *Server) search(w http.ResponseWriter, r *http.Request, typ string) {
	q := r.URL.Query()
	var keys []string
	s.mu.Lock()
	for k, res := range s.resources {
		if strings.HasPrefix(k, typ+"/") &&
			(!q.Has("_id") || res["id"] == q.Get("_id")) &&
			(!q.Has("name") || nameMatches(res, q.Get("name"))) {
			keys = append(keys, k)
		}
	}
	matches := make([]any, 0, len(keys))
	slices.Sort(keys)
	for _, k := range keys {
		matches = append(matches, map[string]any{
			"fullUrl":  s.FHIRBaseURL + "/" + k,
			"resource": s.resources[k],
			"search":   map[string]any{"mode": "match"},
		})
	}
	s.mu.Unlock()

	writeFHIR(w, http.StatusOK, map[string]any{
		"resourceType": "Bundle",
		"type":         "searchset",
		"total":        len(matches),
		"link": []any{map[string]any{
			"relation": "self",
			"url":      s.FHIRBaseURL + "/" + typ + "?" + r.URL.RawQuery,
		}},
		"entry": matches,
	})
}

// nameMatches reports whether a part of a name of res starts with name,
// ignoring case, as FHIR string search does.
func nameMatches(res map[string]any, name string) bool {
	name = strings.ToLower(name)
	names, _ := res["name"].([]any)
	for _, n := range names {
		n, _ := n.(map[string]any)
		parts := []any{n["family"], n["text"]}
		if given, ok := n["given"].([]any); ok {
			parts = append(parts, given...)
		}
		for _, p := range parts {
			if p, ok := p.(string); ok && strings.HasPrefix(strings.ToLower(p), name) {
				return true
			}
		}
	}
	return false
}

// create answers POST /fhir/{type}: it stores the posted resource under a
// new id and echoes it back with that id.
func (s *Server) create(w http.ResponseWriter, r *http.Request, typ string) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/fhir+json" && mt != "application/json" {
		outcome(w, http.StatusUnsupportedMediaType, "not-supported", "Content-Type must be application/fhir+json")
		return
	}
	var res map[string]any
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&res); err != nil || res == nil {
		outcome(w, http.StatusBadRequest, "invalid", "the body must be a JSON resource")
		return
	}
	if res["resourceType"] != typ {
		outcome(w, http.StatusBadRequest, "invalid", "resourceType must be "+typ)
		return
	}

	b := make([]byte, 8)
	rand.Read(b)
	id := hex.EncodeToString(b)
	res["id"] = id
	s.mu.Lock()
	s.resources[typ+"/"+id] = res
	s.mu.Unlock()

	w.Header().Set("Location", s.FHIRBaseURL+"/"+typ+"/"+id+"/_history/1")
	writeFHIR(w, http.StatusCreated, res)
}

// capabilityStatement returns a minimal CapabilityStatement naming the
// OAuth endpoints, as SMART servers do.
func (s *Server) capabilityStatement() map[string]any {
	return map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         "2024-01-01",
		"kind":         "instance",
		"fhirVersion":  "4.0.1",
		"format":       []any{"json"},
		"implementation": map[string]any{
			"description": "smarttest mock FHIR server",
			"url":         s.FHIRBaseURL,
		},
		"rest": []any{map[string]any{
			"mode": "server",
			"security": map[string]any{
				"service": []any{map[string]any{
					"coding": []any{map[string]any{
						"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
						"code":   "SMART-on-FHIR",
					}},
				}},
				"extension": []any{map[string]any{
					"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
					"extension": []any{
						map[string]any{"url": "authorize", "valueUri": s.AuthorizeURL},
						map[string]any{"url": "token", "valueUri": s.TokenURL},
						map[string]any{"url": "revoke", "valueUri": s.RevokeURL},
					},
				}},
			},
			"resource": []any{map[string]any{
				"type": "Patient",
				"interaction": []any{
					map[string]any{"code": "read"},
					map[string]any{"code": "search-type"},
					map[string]any{"code": "create"},
				},
				"searchParam": []any{
					map[string]any{"name": "_id", "type": "token"},
					map[string]any{"name": "name", "type": "string"},
				},
			}},
		}},
	}
}

// resourceType reports whether s looks like a FHIR resource type name.
func resourceType(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, c := range s {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// outcome writes an OperationOutcome with one error issue.
func outcome(w http.ResponseWriter, status int, code, diagnostics string) {
	writeFHIR(w, status, map[string]any{
		"resourceType": "OperationOutcome",
		"issue": []any{map[string]any{
			"severity":    "error",
			"code":        code,
			"diagnostics": diagnostics,
		}},
	})
}

// writeFHIR writes v as a FHIR JSON answer.
func writeFHIR(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
