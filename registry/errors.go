package registry

import "errors"

// ErrStatic is returned by PublishBindings of a static (file) registry: its
// bindings come only from the file.
var ErrStatic = errors.New("registry: bindings are static")
