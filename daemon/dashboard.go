package daemon

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/kitenats/kitenats/admin"
	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/kqerr"
)

// The admin dashboard's dead letters and prepared messages (admin.Dashboard).
var _ admin.Dashboard = adminSource{}

// DeadLetters pages through the dead letters of (topic, group).
func (a adminSource) DeadLetters(ctx context.Context, topic, group string, offset, limit int) (int, []admin.DeadLetter, error) {
	dls, total, err := a.d.broker.DeadLetters(ctx, topic, group, offset, limit)
	if err != nil {
		return 0, nil, refusal(err)
	}
	out := make([]admin.DeadLetter, 0, len(dls))
	for _, dl := range dls {
		m := dl.Message
		l := admin.DeadLetter{ID: m.ID, Topic: m.Topic, MessageType: m.MessageType, Group: dl.Group, Publisher: m.Group,
			Reason: dl.Reason, At: dl.At, Created: m.Created, Body: m.Body}
		for _, p := range m.Properties {
			if l.Properties == nil {
				l.Properties = make(map[string]string, len(m.Properties))
			}
			l.Properties[p.Key] = p.Value
		}
		out = append(out, l)
	}
	return total, out, nil
}

// Replay re-queues one dead letter for its group, as $KQ.ADMIN.DLQ.REPLAY.
func (a adminSource) Replay(_ context.Context, topic, id, group string) error {
	return refusal(a.d.broker.Replay(topic, id, group))
}

// DeleteDead discards one dead letter, as $KQ.ADMIN.DLQ.DELETE.
func (a adminSource) DeleteDead(_ context.Context, topic, id, group string) error {
	return refusal(a.d.broker.DeleteDead(topic, id, group))
}

// PreparedTxs pages through the prepared messages, as $KQ.ADMIN.TX.LIST.
func (a adminSource) PreparedTxs(ctx context.Context, offset, limit int) (int, json.RawMessage, error) {
	total, items, err := a.d.broker.PreparedTxs(ctx, offset, limit)
	if err != nil {
		return 0, nil, refusal(err)
	}
	doc, err := json.Marshal(items)
	if err != nil {
		return 0, nil, err
	}
	return total, doc, nil
}

// refusal gives a broker's refusal (a *kqerr.Error) its HTTP status.
func refusal(err error) error {
	var ke *kqerr.Error
	if errors.As(err, &ke) {
		return &admin.Refusal{Status: int(ke.Code), Err: err}
	}
	return err
}

// dashboardSecret is what the admin dashboard requires: the admin secret
// in secrets mode, nothing in open mode (like the rest of the admin HTTP).
func dashboardSecret(cfg config.Config) string {
	if len(cfg.Secrets) == 0 {
		return ""
	}
	return cfg.AdminSecret
}
