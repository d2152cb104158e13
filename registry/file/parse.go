package file

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kitenats/kitenats/registry"
)

// The YAML of KiteQ's file registry (kiteq-protocol.md §7.3).
type fileYAML struct {
	Brokers  []brokerYAML  `yaml:"brokers"`
	Bindings []bindingYAML `yaml:"bindings"`
}

type brokerYAML struct {
	Address string   `yaml:"address"`
	Topics  []string `yaml:"topics"`
	Env     string   `yaml:"env"` // informational, ignored as in KiteQ
}

type bindingYAML struct {
	GroupIDs    []string `yaml:"groupIds"`
	Topic       string   `yaml:"topic"`
	MessageType string   `yaml:"messageType"`
	BindType    string   `yaml:"bindType"`
	Watermark   int32    `yaml:"watermark"`
	Persistent  bool     `yaml:"persistent"`
}

// Broker is one broker of the file.
type Broker struct {
	// Address is the host:port clients dial, exactly as written.
	Address string
	// Topics are the topics it serves, in file order (KiteQ needs them
	// sorted; this package does not).
	Topics []string
	// Env is informational.
	Env string
}

// state is one parsed file. It is immutable once built.
type state struct {
	brokers  []Broker
	bindings map[string]map[string][]registry.Binding // topic → group → bindings, file order
}

// parse reads the YAML. Problems that KiteQ tolerates but that are
// probably mistakes (an unknown bindType, which KiteQ reads as direct) are
// returned as warnings; anything that would make a binding or a broker
// meaningless is an error.
func parse(data []byte) (*state, []string, error) {
	var f fileYAML
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, nil, fmt.Errorf("file: bad YAML: %w", err)
	}
	st := &state{bindings: make(map[string]map[string][]registry.Binding)}
	seen := make(map[string]bool)
	for i, b := range f.Brokers {
		addr := strings.TrimSpace(b.Address)
		switch {
		case addr == "":
			return nil, nil, fmt.Errorf("file: brokers[%d] has no address", i)
		case seen[addr]:
			return nil, nil, fmt.Errorf("file: broker %s is listed twice", addr)
		}
		seen[addr] = true
		st.brokers = append(st.brokers, Broker{Address: addr, Topics: b.Topics, Env: b.Env})
	}
	var warnings []string
	for i, b := range f.Bindings {
		kind, err := registry.ParseBindType(b.BindType)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("bindings[%d]: bindType %q read as direct, as KiteQ does", i, b.BindType))
			kind = registry.Direct
		}
		if len(b.GroupIDs) == 0 {
			return nil, nil, fmt.Errorf("file: bindings[%d] has no groupIds", i)
		}
		for _, g := range b.GroupIDs {
			bd := registry.Binding{
				GroupID:     g,
				Topic:       b.Topic,
				MessageType: b.MessageType,
				BindType:    kind,
				Watermark:   b.Watermark,
				Persistent:  b.Persistent,
			}.Normalize()
			if err := validate(bd); err != nil {
				return nil, nil, fmt.Errorf("file: bindings[%d]: %w", i, err)
			}
			groups := st.bindings[bd.Topic]
			if groups == nil {
				groups = make(map[string][]registry.Binding)
				st.bindings[bd.Topic] = groups
			}
			groups[g] = append(groups[g], bd)
		}
	}
	return st, warnings, nil
}

// validate is Binding.Validate without the watermark rule: a KiteQ
// registry's watermark <= 0 means KiteQ's default (registry.KiteQWatermark),
// so -1 is a legal value in a KiteQ YAML.
func validate(b registry.Binding) error {
	if b.Watermark < 0 {
		b.Watermark = 0
	}
	return b.Validate()
}

// brokersOf returns the addresses of the brokers that list topic, in file
// order. Membership is exact: unlike KiteQ's binary search, an unsorted
// topic list works.
func (s *state) brokersOf(topic string) []string {
	var out []string
	for _, b := range s.brokers {
		for _, t := range b.Topics {
			if t == topic {
				out = append(out, b.Address)
				break
			}
		}
	}
	return out
}

// has reports whether addr is a broker of the file.
func (s *state) has(addr string) bool {
	for _, b := range s.brokers {
		if b.Address == addr {
			return true
		}
	}
	return false
}

// topicState copies topic's group → bindings.
func (s *state) topicState(topic string) map[string][]registry.Binding {
	out := make(map[string][]registry.Binding, len(s.bindings[topic]))
	for g, bs := range s.bindings[topic] {
		out[g] = append([]registry.Binding(nil), bs...)
	}
	return out
}
