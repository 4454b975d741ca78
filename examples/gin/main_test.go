package main

import (
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/smartrefresh/smartrefresh/examples/internal/demo/demotest"
)

func init() { gin.SetMode(gin.TestMode) }

func TestLaunchAndRefresh(t *testing.T)  { demotest.Flow(t, "Gin", newHandler) }
func TestInABrowser(t *testing.T)        { demotest.Browser(t, "Gin", newHandler) }
func TestTwoTabsInABrowser(t *testing.T) { demotest.TwoTabs(t, "Gin", newHandler) }

func TestConcurrentRequests(t *testing.T) { demotest.Concurrent(t, "Gin", newHandler) }

func TestLoggedOut(t *testing.T) { demotest.LoggedOut(t, "Gin", newHandler) }

func TestForgedState(t *testing.T) { demotest.BadState(t, "Gin", newHandler) }

func TestLogout(t *testing.T) { demotest.Logout(t, "Gin", newHandler) }

func TestLogoutRevocationFails(t *testing.T) { demotest.LogoutRevocationFails(t, "Gin", newHandler) }

func TestMetrics(t *testing.T) { demotest.Metrics(t, "Gin", newHandler) }

func TestRun(t *testing.T) { demotest.Run(t, run) }

func TestEHRLaunch(t *testing.T) { demotest.EHRLaunch(t, "Gin", newHandler) }

func TestNoLaunchPatient(t *testing.T) { demotest.NoLaunchPatient(t, "Gin", newHandler) }

func TestAuthMethods(t *testing.T) { demotest.AuthMethods(t, "Gin", newHandler) }

func TestTokenRejected(t *testing.T) { demotest.TokenRejected(t, "Gin", newHandler) }

func TestProxyPaths(t *testing.T) { demotest.ProxyPaths(t, "Gin", newHandler) }
