package core

// FHIRContextItem is one entry of the SMART launch context's fhirContext:
// a resource the app was launched with, named by reference, canonical URL
// or identifier, with its type and role when the server gave them.
type FHIRContextItem struct {
	Reference  string
	Canonical  string
	Identifier map[string]any
	Type       string
	Role       string
}

// FHIRContext returns the launch context's fhirContext, from the token
// answer (kept in Extra). Entries that are not objects are skipped.
func (t *Token) FHIRContext() []FHIRContextItem {
	list, _ := t.Extra["fhirContext"].([]any)
	var out []FHIRContextItem
	for _, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		id, _ := m["identifier"].(map[string]any)
		out = append(out, FHIRContextItem{
			Reference: str("reference"), Canonical: str("canonical"), Identifier: id,
			Type: str("type"), Role: str("role"),
		})
	}
	return out
}

// NeedPatientBanner reports the launch context's need_patient_banner: true
// when the EHR does not show the patient, so the app must.
func (t *Token) NeedPatientBanner() bool { b, _ := t.Extra["need_patient_banner"].(bool); return b }

// Intent returns the launch context's intent, such as "reconcile-medications".
func (t *Token) Intent() string { return t.extraString("intent") }

// SmartStyleURL returns the launch context's smart_style_url, the EHR's
// style sheet for the app.
func (t *Token) SmartStyleURL() string { return t.extraString("smart_style_url") }

// Tenant returns the launch context's tenant.
func (t *Token) Tenant() string { return t.extraString("tenant") }

func (t *Token) extraString(k string) string { s, _ := t.Extra[k].(string); return s }
