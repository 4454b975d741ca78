package main

import (
	"testing"

	"github.com/smartrefresh/smartrefresh/examples/internal/demo/demotest"
)

func TestLaunchAndRefresh(t *testing.T)  { demotest.Flow(t, "net/http", newHandler) }
func TestInABrowser(t *testing.T)        { demotest.Browser(t, "net/http", newHandler) }
func TestTwoTabsInABrowser(t *testing.T) { demotest.TwoTabs(t, "net/http", newHandler) }

func TestConcurrentRequests(t *testing.T) { demotest.Concurrent(t, "net/http", newHandler) }

func TestLoggedOut(t *testing.T) { demotest.LoggedOut(t, "net/http", newHandler) }

func TestForgedState(t *testing.T) { demotest.BadState(t, "net/http", newHandler) }

func TestLogout(t *testing.T) { demotest.Logout(t, "net/http", newHandler) }

func TestLogoutRevocationFails(t *testing.T) {
	demotest.LogoutRevocationFails(t, "net/http", newHandler)
}

func TestMetrics(t *testing.T) { demotest.Metrics(t, "net/http", newHandler) }

func TestRun(t *testing.T) { demotest.Run(t, run) }

// Three demo processes on one Redis or PostgreSQL, behind a round-robin
// proxy (see demotest.Replicas).
func TestThreeReplicas(t *testing.T) { demotest.Replicas(t, ".") }

func TestEHRLaunch(t *testing.T) { demotest.EHRLaunch(t, "net/http", newHandler) }

func TestNoLaunchPatient(t *testing.T) { demotest.NoLaunchPatient(t, "net/http", newHandler) }

func TestAuthMethods(t *testing.T) { demotest.AuthMethods(t, "net/http", newHandler) }

func TestTokenRejected(t *testing.T) { demotest.TokenRejected(t, "net/http", newHandler) }

func TestProxyPaths(t *testing.T) { demotest.ProxyPaths(t, "net/http", newHandler) }
