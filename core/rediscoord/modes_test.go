package rediscoord_test

import (
	"testing"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// serverMode is one combination of the smarttest options on which real
// servers differ and which change what a rotation meets: what a refresh
// does to the earlier access tokens, and what revoking a rotated token
// does. (core's tests have the same list, and Logout's.)
type serverMode struct {
	access smarttest.AccessOnRefresh
	revoke smarttest.RotatedRevocation
}

func (m serverMode) String() string { return m.access.String() + ", " + m.revoke.String() }

// rotationModes run each AccessOnRefresh and each RotatedRevocation mode
// once, in two runs: the rotation tests never revoke, so pairing the modes
// keeps the suite's wall time down without leaving one out.
var rotationModes = []serverMode{
	{smarttest.AccessRevokedOnRefresh, smarttest.RevokeRotatedNothing},
	{smarttest.AccessKeptOnRefresh, smarttest.RevokeRotatedGrant},
}

// forModes runs test once per mode, each as a subtest named for it.
func forModes(t *testing.T, modes []serverMode, test func(t *testing.T, m serverMode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) { test(t, m) })
	}
}
