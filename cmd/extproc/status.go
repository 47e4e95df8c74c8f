package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/limits"
	"switchyard/luahooks"
	"switchyard/processor"
	"switchyard/reload"
	"switchyard/routing"
	"switchyard/statuspage"
)

// newStatusPage is the admin address's "/" (package statuspage), read from
// the running components.
func newStatusPage(cfg *reload.Holder[routing.Router], hooks *luahooks.Manager, srv *processor.Server, limiter processor.Limiter, reg prometheus.Gatherer, log *slog.Logger) http.Handler {
	src := statuspage.Sources{
		Router:       cfg.Current,
		Health:       srv.Health,
		ConfigReload: cfg.LastReload,
		Hooks:        hooks.Current,
		HooksReload:  hooks.LastReload,
		Metrics:      reg,
		Logger:       log,
	}
	// limits.Local and limits.Global both tell what a key has spent.
	if l, ok := limiter.(interface {
		Usage(context.Context, string, limits.Limits) (limits.Usage, error)
	}); ok {
		src.Spent = l.Usage
	}
	_, src.SharedBudgets = limiter.(*limits.Global)
	return statuspage.New(src)
}
