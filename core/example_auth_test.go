package core_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

func ExampleParsePrivateKeyPEM() {
	// Usually: data, err := os.ReadFile("client-key.pem")
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	key, err := core.ParsePrivateKeyPEM(data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%T %s\n", key, key.Public().(*ecdsa.PublicKey).Curve.Params().Name)

	_, err = core.ParsePrivateKeyPEM([]byte("not a key"))
	fmt.Println(err)
	// Output:
	// *ecdsa.PrivateKey P-384
	// smartrefresh: misconfigured: private key: no PEM private key block found
}

// A confidential asymmetric client (SMART's private_key_jwt): every refresh
// carries a fresh client assertion signed with the client's key.
func Example_privateKeyJWT() {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader) // or core.ParsePrivateKeyPEM
	srv := smarttest.NewServer(smarttest.Options{
		AuthMethod:      core.PrivateKeyJWT,
		ClientPublicKey: key.Public(),
		ClientKeyID:     "my-key-2026",
	})
	defer srv.Close()

	sessions := scs.New()
	r, err := core.New(core.Config{
		TokenURL:   srv.TokenURL,
		ClientID:   "smart-client",
		AuthMethod: core.PrivateKeyJWT,
		PrivateKey: key,           // any crypto.Signer: an HSM or KMS key works too
		KeyID:      "my-key-2026", // the kid in the client's registered JWK Set
		Sessions:   sessions,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, _ := sessions.Load(context.Background(), "")
	if err := r.Save(ctx, srv.Grant()); err != nil {
		log.Fatal(err)
	}
	srv.ExpireAccessTokens() // the FHIR server answers 401 once: a refresh follows
	resp, err := r.Client(ctx).Get(srv.FHIRBaseURL + "/Patient/123")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after", srv.RefreshCalls(), "refresh")
	// Output: 200 OK after 1 refresh
}

func ExampleNew_privateKeyJWT() {
	data, err := os.ReadFile("/etc/myapp/smart-client-key.pem")
	if err != nil {
		log.Fatal(err)
	}
	key, err := core.ParsePrivateKeyPEM(data)
	if err != nil {
		log.Fatal(err)
	}
	r, err := core.New(core.Config{
		TokenURL:   "https://ehr.example.com/auth/token",
		ClientID:   "my-client-id",
		AuthMethod: core.PrivateKeyJWT,
		PrivateKey: key,
		KeyID:      "my-key-2026",
		SigningAlg: core.ES384, // optional: follows from the key
		Sessions:   scs.New(),
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = r
}

func ExampleRefresher_Logout() {
	srv := smarttest.NewServer(smarttest.Options{})
	defer srv.Close()
	cfg := core.Config{RevocationURL: srv.RevokeURL} // RFC 7009; for Health Gorilla use its preset
	exampleApp(srv, cfg, func(r *core.Refresher, w http.ResponseWriter, req *http.Request) {
		err := r.Logout(req.Context())
		if err != nil {
			// The token is gone from the session all the same; the grant
			// may still be alive at the server.
			log.Print("logout: ", err)
		}
		_, err = r.Token(req.Context())
		fmt.Fprintln(w, errors.Is(err, core.ErrNoToken), srv.RevokedGrants())
	})
	// Output: true 1
}

func ExampleConfig_String() {
	cfg := core.Config{
		TokenURL:     "https://ehr.example.com/token",
		ClientID:     "my-client-id",
		ClientSecret: "s3cr3t",
		AuthMethod:   core.ClientSecretBasic,
	}
	fmt.Println(cfg)
	fmt.Printf("%+v\n", cfg)
	// Output:
	// {https://ehr.example.com/token my-client-id client_secret_basic}
	// {TokenURL:https://ehr.example.com/token RevocationURL: RevocationStyle:RevokeRFC7009 ClientID:my-client-id ClientSecret:[REDACTED] AuthMethod:client_secret_basic PrivateKey: KeyID: SigningAlg: Scope: SessionKey: Leeway:0s RefreshTimeout:0s}
}
