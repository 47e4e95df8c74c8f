package main

import (
	"context"
	"errors"
	"io"
)

func runHooks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("hooks: not available")
}
