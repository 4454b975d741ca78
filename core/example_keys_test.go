package core_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
)

// Rotating the encryption key from k1 to k2 on replicas that share
// sessions: a replica of the old configuration leaves a token sealed with
// k2 alone and answers 503; with k2 as a decryption key (the first phase
// of the rotation) it reads it.
func ExampleConfig_decryptionKeys() {
	k1 := bytes.Repeat([]byte{1}, core.EncryptionKeySize) // from your secret store
	k2 := bytes.Repeat([]byte{2}, core.EncryptionKeySize)
	sessions := scs.New()
	replica := func(enc, dec [][]byte) *core.Refresher {
		r, err := core.New(core.Config{
			TokenURL: "https://api.healthgorilla.com/oauth/token", ClientID: "my-client-id",
			Sessions:       sessions,
			EncryptionKeys: enc,
			DecryptionKeys: dec,
		})
		if err != nil {
			log.Fatal(err)
		}
		return r
	}
	old := replica([][]byte{k1}, nil)
	phase1 := replica([][]byte{k1}, [][]byte{k2}) // deployed everywhere first
	phase2 := replica([][]byte{k2, k1}, nil)      // then this one

	ctx, _ := sessions.Load(context.Background(), "")
	if err := phase2.Save(ctx, &core.Token{AccessToken: "sealed with k2"}); err != nil {
		log.Fatal(err)
	}
	_, err := old.Token(ctx)
	status, _ := core.ErrorResponse(err)
	fmt.Println("old replica:", errors.Is(err, core.ErrUnknownEncryptionKey), status)
	tok, err := phase1.Token(ctx)
	fmt.Println("phase 1 replica:", tok.AccessToken, err)
	// Output:
	// old replica: true 503
	// phase 1 replica: sealed with k2 <nil>
}
