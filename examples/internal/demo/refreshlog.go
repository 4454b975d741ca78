package demo

import (
	"sync"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// LastRefresh is the last refresh of a session's token, as the page shows
// it.
type LastRefresh struct {
	// At is when the refresh obtained the current token
	// (core.SessionInfo.Obtained).
	At time.Time `json:"at"`
	// Rotated reports whether the server issued a new refresh token; nil
	// when another replica made the refresh.
	Rotated *bool `json:"rotated,omitempty"`
}

// rotations remembers, for the page, whether each refresh this process
// made rotated the refresh token. The Refresher's OnRefresh hook does not
// name the session, so a refresh is found again by the expiry of the token
// it obtained (core.SessionInfo.Expiry), which the hook reports too.
type rotations struct {
	mu      sync.Mutex
	byEnd   map[time.Time]bool
	maxKeep int
}

func newRotations() *rotations {
	return &rotations{byEnd: map[time.Time]bool{}, maxKeep: 10000}
}

// record keeps the rotation of a refresh, forgetting expired tokens' when
// the map is full.
func (l *rotations) record(info core.RefreshInfo, now time.Time) {
	if info.Expiry.IsZero() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.byEnd) >= l.maxKeep {
		for end := range l.byEnd {
			if end.Before(now) {
				delete(l.byEnd, end)
			}
		}
	}
	if len(l.byEnd) < l.maxKeep {
		l.byEnd[info.Expiry.UTC()] = info.Rotated
	}
}

// lastRefresh returns the refresh that obtained info's token, nil when
// there was none since the login.
func (l *rotations) lastRefresh(info core.SessionInfo) *LastRefresh {
	if info.Refreshes == 0 || info.Obtained.IsZero() {
		return nil
	}
	r := &LastRefresh{At: info.Obtained.UTC()}
	l.mu.Lock()
	defer l.mu.Unlock()
	if rotated, ok := l.byEnd[info.Expiry.UTC()]; ok {
		r.Rotated = &rotated
	}
	return r
}
