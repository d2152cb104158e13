package natsproto

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/semantics"
	"github.com/kitenats/kitenats/store"
)

// TxReply is the reply of $KQ.API.TX.<group> and $KQ.ADMIN.TX. Its fields
// are in the order of the map encoding/json wrote before it (keys sorted).
type TxReply struct {
	Action string `json:"action"`
	ID     string `json:"id"`
}

// txRequest is the body of $KQ.API.TX.<group> and $KQ.ADMIN.TX.
type txRequest struct {
	Topic  string `json:"topic"`
	ID     string `json:"id"`
	Action string `json:"action"`
}

// handleTx serves $KQ.API.TX.<group> (group not nil: resolve a prepared
// message that group published, refuse another group's with 403) and
// $KQ.ADMIN.TX (group nil: any group's).
func (s *Server) handleTx(ctx context.Context, group *string, body []byte) (TxReply, error) {
	if !s.tx {
		return TxReply{}, kqerr.New(kqerr.NotImplemented, nil, "two-phase commit is not implemented yet")
	}
	var req txRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return TxReply{}, kqerr.New(kqerr.BadRequest, err, "bad TX request: %v", err)
	}
	var commit bool
	switch req.Action {
	case "commit":
		commit = true
	case "rollback":
	case "":
		// Most likely a listing sent where it was served before $KQ.ADMIN.
		return TxReply{}, kqerr.New(kqerr.BadRequest, nil, "action \"\" is not commit or rollback (prepared messages are listed by $KQ.ADMIN.TX.LIST)")
	default:
		return TxReply{}, kqerr.New(kqerr.BadRequest, nil, "action %q is not commit or rollback", req.Action)
	}
	if req.Topic == "" || !semantics.ValidMessageID(req.ID) {
		return TxReply{}, kqerr.New(kqerr.BadRequest, nil, "TX needs a topic and a 32-hex-digit id")
	}
	var err error
	if group != nil {
		err = s.b.ResolveTxAs(ctx, *group, req.Topic, req.ID, commit)
	} else {
		err = s.b.ResolveTx(ctx, req.Topic, req.ID, commit)
	}
	if err != nil {
		return TxReply{}, err
	}
	return TxReply{ID: req.ID, Action: req.Action}, nil
}

// listTx serves $KQ.ADMIN.TX.LIST.
func (s *Server) listTx(ctx context.Context, body []byte) (Page[semantics.PreparedTx], error) {
	if !s.tx {
		return Page[semantics.PreparedTx]{}, kqerr.New(kqerr.NotImplemented, nil, "two-phase commit is not implemented yet")
	}
	r, err := parsePageRequest(body)
	if err != nil {
		return Page[semantics.PreparedTx]{}, err
	}
	total, items, err := s.b.PreparedTxs(ctx, r.Offset, r.Limit)
	if err != nil {
		return Page[semantics.PreparedTx]{}, err
	}
	return Page[semantics.PreparedTx]{Total: total, Offset: r.Offset, Limit: r.Limit, Items: items}, nil
}

// Requester sends NATS requests for TxCheck (the root package's, over the
// broker's NATS connection).
type Requester interface {
	// Interested reports whether any client subscribes to a subject
	// matching subject.
	Interested(subject string) bool
	// Request sends a request and returns the body of its reply.
	Request(ctx context.Context, subject string, header map[string][]string, body []byte) ([]byte, error)
}

// TxCheck asks the NATS producers of m's group about prepared message m
// (NATS-PROTOCOL.md §5): a request on $KQ.TXCHECK.<group> carrying the
// delivery headers and the body, when that subject has interest. asked is
// false when nobody listens (the caller may ask elsewhere); answer is the
// reply's body (commit, rollback or unknown, for the caller to parse).
func TxCheck(ctx context.Context, r Requester, m *store.Message) (answer string, asked bool, err error) {
	subject := "$KQ.TXCHECK." + EncodeToken(m.Group)
	if !r.Interested(subject) {
		return "", false, nil
	}
	reply, err := r.Request(ctx, subject, DeliveryHeaders(m, 0), m.Body)
	if err != nil {
		return "", true, fmt.Errorf("check %s/%s on %s: %w", m.Topic, m.ID, subject, err)
	}
	return string(reply), true, nil
}
