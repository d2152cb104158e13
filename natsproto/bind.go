package natsproto

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/semantics"
)

// BindReply is the reply of $KQ.API.BIND.<group>: the consumer's id, for
// CONSUMER.DELETE.
type BindReply struct {
	Consumer string `json:"consumer"`
}

// bindRequest is the body of $KQ.API.BIND.<group>.
type bindRequest struct {
	Deliver      string        `json:"deliver"`
	Bindings     []bindingSpec `json:"bindings"`
	WarmingupSec int           `json:"warmingupSec"`
	MaxInflight  int           `json:"maxInflight"`
	AckWait      time.Duration `json:"ackWait"`
}

// bindingSpec is a binding as a NATS client writes it.
type bindingSpec struct {
	Topic       string            `json:"topic"`
	MessageType string            `json:"messageType"`
	BindType    registry.BindType `json:"bindType"`
	Persistent  bool              `json:"persistent"`
	Watermark   int32             `json:"watermark"`
}

// handleBind serves $KQ.API.BIND.<group>: it adds the bindings to the
// group's set (durably) and makes the connection holding the deliver
// subscription a consumer of the group.
func (s *Server) handleBind(ctx context.Context, group string, body []byte) (BindReply, error) {
	var req bindRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return BindReply{}, kqerr.New(kqerr.BadRequest, err, "bad BIND request: %v", err)
	}
	prefix := "$KQ.DLV." + EncodeToken(group) + "."
	if !strings.HasPrefix(req.Deliver, prefix) || len(req.Deliver) == len(prefix) || strings.ContainsAny(req.Deliver, "*> ") {
		return BindReply{}, kqerr.New(kqerr.BadRequest, nil, "deliver subject %q must be %s<anything>", req.Deliver, prefix)
	}
	if req.WarmingupSec < 0 || req.MaxInflight < 0 || req.AckWait < 0 {
		return BindReply{}, kqerr.New(kqerr.BadRequest, nil, "warmingupSec, maxInflight and ackWait must not be negative")
	}
	if maxSec := int64(semantics.MaxWarmup / time.Second); int64(req.WarmingupSec) > maxSec {
		// Also before time.Duration(warmingupSec)*time.Second, which
		// overflows into a negative duration (no ramp at all) past
		// about 292 years.
		return BindReply{}, kqerr.New(kqerr.BadRequest, nil, "warmingupSec %d: at most %d (a day)", req.WarmingupSec, maxSec)
	}
	if lim := s.cfg.MaxBindingsPerRequest; lim >= 0 && len(req.Bindings) > lim {
		s.b.CountLimit(semantics.LimitBindingsPerRequest)
		return BindReply{}, kqerr.New(kqerr.TooLarge, nil,
			"BIND of %d bindings, over the limit of %d per request (maxBindingsPerRequest)", len(req.Bindings), lim)
	}
	bs := make([]registry.Binding, 0, len(req.Bindings))
	for i, sp := range req.Bindings {
		if i%512 == 511 && ctx.Err() != nil {
			s.b.CountLimit(semantics.LimitAPIDeadline)
			return BindReply{}, kqerr.New(kqerr.Unavailable, ctx.Err(), "out of time after checking %d of %d bindings; nothing changed", i, len(req.Bindings))
		}
		bd := registry.Binding{
			GroupID: group, Topic: sp.Topic, MessageType: sp.MessageType, BindType: sp.BindType,
			Persistent: sp.Persistent, Watermark: sp.Watermark,
		}.Normalize()
		if err := bd.Validate(); err != nil {
			return BindReply{}, kqerr.New(kqerr.BadRequest, err, "%v", err)
		}
		if !s.b.Serves(bd.Topic) {
			return BindReply{}, kqerr.New(kqerr.NotFound, nil, "topic not served: %s", bd.Topic)
		}
		bs = append(bs, bd)
	}
	holders, err := s.loc.Holders(req.Deliver)
	if err != nil {
		return BindReply{}, kqerr.New(kqerr.Internal, err, "finding the deliver subscription: %v", err)
	}
	if len(holders) != 1 {
		return BindReply{}, kqerr.New(kqerr.Conflict, nil, "%d connections subscribe to %s; exactly one must", len(holders), req.Deliver)
	}
	spec := semantics.ConsumerSpec{
		Group:       group,
		Key:         req.Deliver,
		Conn:        holders[0],
		Warmup:      time.Duration(req.WarmingupSec) * time.Second,
		MaxInflight: req.MaxInflight,
		AckWait:     req.AckWait,
		Endpoint:    endpoint{s: s, subject: req.Deliver},
	}
	// A consumer the limits refuse is refused before its bindings change
	// anything (Join checks again, should another BIND come between).
	if err := s.b.CanJoin(spec); err != nil {
		return BindReply{}, err
	}
	if err := s.b.AddBindings(ctx, group, bs); err != nil {
		return BindReply{}, err
	}
	id, err := s.b.Join(spec)
	if err != nil {
		return BindReply{}, err
	}
	return BindReply{Consumer: id}, nil
}
