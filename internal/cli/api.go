package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kitenats/kitenats/client"
)

// apiCall sends one $KQ.API or $KQ.ADMIN request to a running broker and returns the
// reply, turning an error member into an error.
func apiCall(server, user, pass, subject string, req any) (json.RawMessage, error) {
	opts := []nats.Option{nats.Name("kitenats-cli")}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, pass), nats.CustomInboxPrefix(client.InboxPrefix(user)))
	}
	nc, err := nats.Connect(server, opts...)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	var body []byte
	if req != nil {
		if body, err = json.Marshal(req); err != nil {
			return nil, err
		}
	}
	msg, err := nc.Request(subject, body, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	var e struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if json.Unmarshal(msg.Data, &e) == nil && e.Error != nil {
		return nil, fmt.Errorf("%s: %d %s", subject, e.Error.Code, e.Error.Description)
	}
	return msg.Data, nil
}

func clientFlags(name string) (*flag.FlagSet, *string, *string, *string) {
	fs := flag.NewFlagSet("kitenats "+name, flag.ContinueOnError)
	s := fs.String("s", "nats://127.0.0.1:4222", "broker NATS URL")
	user := fs.String("user", "", "NATS user (admin in secrets mode)")
	pass := fs.String("password", "", "NATS password")
	return fs, s, user, pass
}

func printJSON(raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Stat is `kitenats stat`: it prints $KQ.ADMIN.STAT.
func Stat(args []string) error {
	fs, s, user, pass := clientFlags("stat")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := apiCall(*s, *user, *pass, "$KQ.ADMIN.STAT", nil)
	if err != nil {
		return err
	}
	return printJSON(raw)
}

// DLQ is `kitenats dlq`: it lists a group's dead letters of a topic, or
// replays one.
func DLQ(args []string) error {
	fs, s, user, pass := clientFlags("dlq")
	topic := fs.String("topic", "", "topic (required)")
	group := fs.String("group", "", "consumer group (required)")
	replay := fs.String("replay", "", "message id to re-queue for the group")
	offset := fs.Int("offset", 0, "list offset")
	limit := fs.Int("limit", 100, "list page size (at most 1000)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *topic == "" || *group == "" {
		return fmt.Errorf("dlq: -topic and -group are required")
	}
	if *replay != "" {
		raw, err := apiCall(*s, *user, *pass, "$KQ.ADMIN.DLQ.REPLAY", map[string]string{"topic": *topic, "groupId": *group, "id": *replay})
		if err != nil {
			return err
		}
		return printJSON(raw)
	}
	raw, err := apiCall(*s, *user, *pass, "$KQ.ADMIN.DLQ.LIST", map[string]any{"topic": *topic, "groupId": *group, "offset": *offset, "limit": *limit})
	if err != nil {
		return err
	}
	return printJSON(raw)
}

// Tx is `kitenats tx`: it lists prepared messages, or resolves one.
func Tx(args []string) error {
	fs, s, user, pass := clientFlags("tx")
	offset := fs.Int("offset", 0, "list offset")
	limit := fs.Int("limit", 100, "list page size (at most 1000)")
	commit := fs.String("commit", "", "commit the prepared message with this id (needs -topic and -group)")
	rollback := fs.String("rollback", "", "roll back the prepared message with this id (needs -topic and -group)")
	topic := fs.String("topic", "", "topic of the message to resolve")
	group := fs.String("group", "", "publishing group of the message to resolve")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 && fs.Arg(0) != "list" {
		return fmt.Errorf("tx: unknown argument %q (want list, or -commit/-rollback ID)", fs.Arg(0))
	}
	if *commit != "" || *rollback != "" {
		if *topic == "" || *group == "" || *commit != "" && *rollback != "" {
			return fmt.Errorf("tx: one of -commit or -rollback, with -topic and -group")
		}
		id, action := *commit, "commit"
		if *rollback != "" {
			id, action = *rollback, "rollback"
		}
		raw, err := apiCall(*s, *user, *pass, "$KQ.API.TX."+*group, map[string]string{"topic": *topic, "id": id, "action": action})
		if err != nil {
			return err
		}
		return printJSON(raw)
	}
	raw, err := apiCall(*s, *user, *pass, "$KQ.ADMIN.TX.LIST", map[string]int{"offset": *offset, "limit": *limit})
	if err != nil {
		return err
	}
	var page struct {
		Total int `json:"total"`
		Items []struct {
			Topic      string `json:"topic"`
			ID         string `json:"id"`
			Group      string `json:"groupId"`
			AgeSeconds int64  `json:"ageSeconds"`
			Checks     int    `json:"checks"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return err
	}
	fmt.Printf("%-20s %-32s %-20s %12s %6s\n", "topic", "id", "group", "age", "checks")
	for _, it := range page.Items {
		fmt.Printf("%-20s %-32s %-20s %12s %6d\n", it.Topic, it.ID, it.Group, time.Duration(it.AgeSeconds)*time.Second, it.Checks)
	}
	fmt.Printf("%d prepared message(s)\n", page.Total)
	return nil
}
