package core_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
)

// TestConfigRedaction: a Config printed, logged or encoded shows neither
// its client secret nor its encryption keys.
func TestConfigRedaction(t *testing.T) {
	key := []byte("0123456789abcdef0123456789ABCDEF")
	cfg := core.Config{
		TokenURL: "https://ehr.example/token", ClientID: "app", ClientSecret: "client-secret-XYZ",
		AuthMethod: core.ClientSecretPost, EncryptionKeys: [][]byte{key},
		FHIRBaseURLs: []string{"https://ehr.example/fhir"},
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%v\n%+v\n%#v\n%s\n%v\n", cfg, cfg, cfg, cfg, &cfg)
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(js)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("config", "cfg", cfg)
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "cfg", cfg)
	text := out.String()
	for _, secret := range []string{
		"client-secret-XYZ", string(key), hex.EncodeToString(key),
		base64.StdEncoding.EncodeToString(key), fmt.Sprint(key),
	} {
		if strings.Contains(text, secret) {
			t.Errorf("secret %.6q… shown:\n%s", secret, text)
		}
	}
	if !strings.Contains(text, "ehr.example/token") || !strings.Contains(text, "app") {
		t.Errorf("the settings are not shown:\n%s", text)
	}
}
