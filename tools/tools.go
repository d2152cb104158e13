//go:build tools

// Package tools pins the versions of the developer tools the Makefile
// installs (make lint). It is a module of its own so that the main
// module's go.mod does not carry their dependencies.
package tools

import (
	_ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
)
