package semantics

import (
	"context"
	"errors"
	"fmt"

	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/store"
)

// RegistryBindings keeps BIND's bindings in a registry, where KiteQ
// clients see them too. A static registry (a YAML file) answers
// registry.ErrStatic.
type RegistryBindings struct{ Registry registry.Registry }

// KeepBindings implements BindingKeeper.
func (k RegistryBindings) KeepBindings(ctx context.Context, group string, bs []registry.Binding) error {
	return k.Registry.PublishBindings(ctx, group, bs)
}

// storeBindings keeps bindings in the store while no registry is
// configured, one JSON document (KiteQ's binding form) per group.
type storeBindings struct{ bs store.BindingStore }

func (k storeBindings) KeepBindings(ctx context.Context, group string, bs []registry.Binding) error {
	var doc []byte
	if len(bs) > 0 {
		var err error
		if doc, err = registry.MarshalBindings(bs); err != nil {
			return err
		}
	}
	return k.bs.SaveBindings(ctx, group, doc)
}

// StoreBindings returns a BindingKeeper that keeps bindings in st, and the
// bindings st holds, for a broker with no registry.
func StoreBindings(ctx context.Context, st store.Store) (BindingKeeper, map[string][]registry.Binding, error) {
	bs, ok := st.(store.BindingStore)
	if !ok {
		return nil, nil, errors.New("the store cannot keep bindings and no registry is configured")
	}
	docs, err := bs.LoadBindings(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("loading bindings: %w", err)
	}
	initial := make(map[string][]registry.Binding, len(docs))
	for g, doc := range docs {
		if initial[g], err = registry.UnmarshalBindings(doc); err != nil {
			return nil, nil, fmt.Errorf("bindings of %s: %w", g, err)
		}
	}
	return storeBindings{bs}, initial, nil
}
