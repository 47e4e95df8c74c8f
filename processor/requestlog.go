package processor

import (
	"log/slog"

	"switchyard/internal/usage"
	"switchyard/pricing"
)

// requestLog is a request's log record: one line per request, written once
// by the stream that ends it, with the same fields on every path (routed,
// refused, with fallbacks, counted, translated). RequestID is the client's
// x-request-id, as the client and hooks know the request.
type requestLog struct {
	RequestID, Path, Model, KeyName, Session string
	// Team is the key's team, "" for none (logged only when set).
	Team string
	// The provider that answered (the last attempt's with fallbacks), the
	// model it was sent and the route that matched.
	Provider, UpstreamModel, Route string
	Tags                           map[string]string
	Translated                     bool
	// Status is the answer's status when the gateway saw it, else 0; a
	// refusal's also has its error code and reason.
	Status       int
	Code, Reason string
	// Tokens are set when the answer was counted; UsageEstimated when
	// they were estimated (an answer cut before it reported usage: see
	// Server.unfinished). Cost is what they cost when Priced.
	Tokens         *usage.Tokens
	UsageEstimated bool
	// ServiceTier is the tier the answer says it was served at (OpenAI's
	// service_tier), which it is priced at; "" when it names none.
	ServiceTier string
	Cost        pricing.Cost
	Priced      bool
	Attempts    []attemptOutcome // requests with fallbacks
}

// LogValue renders the record inline: slog.Any("", &record).
func (l *requestLog) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs,
		slog.String("request_id", l.RequestID), slog.String("path", pathOnly(l.Path)),
		slog.String("model", truncate(l.Model, 128)), slog.String("key_name", l.KeyName),
		slog.String("session", sessionLogID(l.Session)), slog.String("provider", l.Provider),
		slog.String("upstream_model", l.UpstreamModel), slog.String("route", l.Route),
		slog.Any("tags", l.Tags), slog.Bool("translated", l.Translated), slog.Int("status", l.Status))
	if l.Team != "" {
		attrs = append(attrs, slog.String("team", l.Team))
	}
	if l.Code != "" {
		attrs = append(attrs, slog.String("code", l.Code), slog.String("reason", l.Reason))
	}
	if t := l.Tokens; t != nil {
		attrs = append(attrs, slog.Int64("input_tokens", t.Input), slog.Int64("output_tokens", t.Output),
			slog.Int64("cache_read_tokens", t.CacheRead), slog.Int64("cache_creation_tokens", t.CacheCreation),
			slog.Int64("reasoning_tokens", t.Reasoning))
		if t.CacheCreation1h > 0 {
			attrs = append(attrs, slog.Int64("cache_creation_1h_tokens", t.CacheCreation1h))
		}
		if l.Priced {
			attrs = append(attrs, slog.Float64("cost_usd", l.Cost.USD()))
		} else {
			attrs = append(attrs, slog.Bool("unpriced", true))
		}
		if l.UsageEstimated {
			attrs = append(attrs, slog.Bool("usage_estimated", true))
		}
		if l.ServiceTier != "" {
			attrs = append(attrs, slog.String("service_tier", truncate(l.ServiceTier, 32)))
		}
	}
	if l.Attempts != nil {
		attrs = append(attrs, slog.Any("attempts", l.Attempts))
	}
	return slog.GroupValue(attrs...)
}
