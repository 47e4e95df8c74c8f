package main

import (
	"context"
	"time"

	"switchyard/watch"
)

// configDebounce lets a burst of file events (write, chmod, rename) settle
// into one reload.
const configDebounce = 100 * time.Millisecond

// startWatch begins watching the config file before serving starts, so no
// change made after startup is missed; run stops with ctx.
func (h *configHolder) startWatch() (run func(ctx context.Context), err error) {
	w, err := watch.NewFile(h.path, configDebounce, h.reload)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) {
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			h.log.Error("config watch stopped; reload with SIGHUP", "err", err)
		}
	}, nil
}
