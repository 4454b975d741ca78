package main

import (
	"testing"

	"github.com/smartrefresh/smartrefresh/examples/internal/demo/demotest"
)

func TestLaunchAndRefresh(t *testing.T)  { demotest.Flow(t, "Echo", newHandler) }
func TestInABrowser(t *testing.T)        { demotest.Browser(t, "Echo", newHandler) }
func TestTwoTabsInABrowser(t *testing.T) { demotest.TwoTabs(t, "Echo", newHandler) }

func TestConcurrentRequests(t *testing.T) { demotest.Concurrent(t, "Echo", newHandler) }

func TestLoggedOut(t *testing.T) { demotest.LoggedOut(t, "Echo", newHandler) }

func TestForgedState(t *testing.T) { demotest.BadState(t, "Echo", newHandler) }

func TestLogout(t *testing.T) { demotest.Logout(t, "Echo", newHandler) }

func TestLogoutRevocationFails(t *testing.T) { demotest.LogoutRevocationFails(t, "Echo", newHandler) }

func TestMetrics(t *testing.T) { demotest.Metrics(t, "Echo", newHandler) }

func TestRun(t *testing.T) { demotest.Run(t, run) }

func TestEHRLaunch(t *testing.T) { demotest.EHRLaunch(t, "Echo", newHandler) }

func TestNoLaunchPatient(t *testing.T) { demotest.NoLaunchPatient(t, "Echo", newHandler) }

func TestAuthMethods(t *testing.T) { demotest.AuthMethods(t, "Echo", newHandler) }

func TestTokenRejected(t *testing.T) { demotest.TokenRejected(t, "Echo", newHandler) }

func TestProxyPaths(t *testing.T) { demotest.ProxyPaths(t, "Echo", newHandler) }
