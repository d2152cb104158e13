package zk

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"
)

// ErrSessionLost is the Err of the Event a watch sends when the session is
// lost: ZooKeeper expired it, or the connection has been down for longer
// than the session timeout (so the server has expired it, or will).
var ErrSessionLost = errors.New("zk: session lost")

// sessionView is what watches learn about the session.
type sessionView struct {
	gen     uint64        // bumped on every loss, recovery and new session
	lostGen uint64        // gen of the latest loss
	lost    bool          // no usable session now
	lostErr error         // why the latest loss happened; kept after recovery
	changed chan struct{} // closed (and replaced) on every bump
}

// onEvent is go-zookeeper's event callback. It runs on the connection's
// goroutine, so it only records the state and kicks the session loop.
func (r *Registry) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	r.evMu.Lock()
	r.state = ev.State
	if ev.State == zk.StateExpired {
		r.expired = true
	}
	r.evMu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// takeState returns the last session state and whether an expiry was
// reported since the last call; the expiry flag is sticky until read, so
// an expiry followed at once by a new session is never missed.
func (r *Registry) takeState() (zk.State, bool) {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	exp := r.expired
	r.expired = false
	return r.state, exp
}

func (r *Registry) view() sessionView {
	r.sessMu.Lock()
	defer r.sessMu.Unlock()
	return r.sess
}

// bump publishes a new session view to every watch; err says why a loss
// happened.
func (r *Registry) bump(lost bool, err error) {
	r.sessMu.Lock()
	defer r.sessMu.Unlock()
	r.sess.gen++
	if lost {
		r.sess.lostGen = r.sess.gen
		r.sess.lostErr = err
	}
	r.sess.lost = lost
	close(r.sess.changed)
	r.sess.changed = make(chan struct{})
}

// sessionLoop follows the session. A loss (expiry, or no session for
// longer than the session timeout) is announced to every watch; a new
// session gets every advertised server node re-created and makes every
// watch re-arm its watches and send its full state again.
func (r *Registry) sessionLoop(sid int64) {
	lostTimer := time.NewTimer(time.Hour)
	lostTimer.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer lostTimer.Stop()
	defer retry.Stop()
	var (
		lostTimerOn bool
		lost        bool
		republish   bool
	)
	for {
		select {
		case <-r.done:
			return
		case <-r.kick:
		case <-retry.C:
		case <-lostTimer.C:
			lostTimerOn = false
			if !lost {
				lost = true
				err := fmt.Errorf("%w: no connection for %v", ErrSessionLost, r.cfg.SessionTimeout)
				r.log.Warn("zk: session lost", "err", err)
				r.bump(true, err)
			}
		}
		state, expired := r.takeState()
		if expired && !lost {
			lost = true
			err := fmt.Errorf("%w: %w", ErrSessionLost, zk.ErrSessionExpired)
			r.log.Warn("zk: session expired")
			r.bump(true, err)
		}
		if state != zk.StateHasSession {
			if !lost && !lostTimerOn {
				lostTimer.Reset(r.cfg.SessionTimeout)
				lostTimerOn = true
			}
			continue
		}
		if lostTimerOn {
			lostTimer.Stop()
			lostTimerOn = false
		}
		cur := r.conn.SessionID()
		if cur == 0 {
			continue
		}
		newSession := cur != sid
		if newSession {
			r.log.Info("zk: new session", "session", fmt.Sprintf("%#x", cur))
			sid = cur
			republish = true
		}
		if lost || newSession {
			// Watches re-arm and send full state even if publishing the
			// server nodes below fails: the two are independent.
			lost = false
			r.bump(false, nil)
		}
		if republish {
			if err := r.republish(); err != nil {
				if r.isClosed() {
					return
				}
				r.log.Warn("zk: re-publishing server nodes failed; retrying", "err", err)
				retry.Reset(r.cfg.RetryInterval)
				continue
			}
			republish = false
		}
	}
}
