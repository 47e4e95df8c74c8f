// The event hooks Envoy 1.40's dynamic module filter
// (envoy.filters.http.dynamic_modules) looks up in this library, and the
// few of its callbacks they use, declared from its ABI. The hooks are C:
// every call into Go passes the Go scheduler, so only the end of a body
// (summarizeBody) does.
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "_cgo_export.h"

// yieldDue says whether this Envoy thread's call into Go should pass the Go
// scheduler (summarizeBody's yield), every 5 ms at most. A thread that only
// calls into Go keeps its Go processor between calls, and the processor's
// count of scheduled goroutines never moves: the runtime's monitor takes it
// for a goroutine running too long, takes the processor back every 10 ms and
// then wakes every 20 us for a millisecond, 2,000 times a second in all,
// which cost Envoy more CPU per 256 KB request than copying the body. One
// pass through the scheduler every few milliseconds keeps the count moving
// and the monitor asleep.
static bool yieldDue(void) {
	static __thread int64_t last;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (now - last < 5000000) {
		return false;
	}
	last = now;
	return true;
}

// The ABI version this library was written against; Envoy 1.40 matches it.
const char *envoy_dynamic_module_on_program_init(void) { return "v0.2.0"; }

// One filter config and one filter object serve every request: the filter
// keeps no state of its own (Envoy buffers the body), so any non-null
// pointer will do.
static char state;

const void *envoy_dynamic_module_on_http_filter_config_new(void *config, sy_buffer name, sy_buffer value) { return &state; }
void envoy_dynamic_module_on_http_filter_config_destroy(void *config) {}
const void *envoy_dynamic_module_on_http_filter_per_route_config_new(sy_buffer name, sy_buffer value) { return &state; }
void envoy_dynamic_module_on_http_filter_per_route_config_destroy(void *config) {}
void *envoy_dynamic_module_on_http_filter_new(void *config, void *filter) { return &state; }
void envoy_dynamic_module_on_http_filter_destroy(void *filter) {}
void envoy_dynamic_module_on_http_filter_stream_complete(void *filter, void *module) {}

// Statuses, as Envoy's FilterHeadersStatus and FilterDataStatus number them.
enum { headers_continue = 0, headers_stop_iteration = 1 };
enum { body_continue = 0, body_stop_and_buffer = 1 };
enum { trailers_continue = 0 };

// A request with a body waits for all of it: its headers stop until then.
int envoy_dynamic_module_on_http_filter_request_headers(void *filter, void *module, bool end_of_stream) {
	return end_of_stream ? headers_continue : headers_stop_iteration;
}

// Envoy buffers the body until its end, which is summarized.
int envoy_dynamic_module_on_http_filter_request_body(void *filter, void *module, bool end_of_stream) {
	if (!end_of_stream) {
		return body_stop_and_buffer;
	}
	summarizeBody((uintptr_t)filter, true, yieldDue());
	return body_continue;
}

// A body that ends with trailers is all buffered by then.
int envoy_dynamic_module_on_http_filter_request_trailers(void *filter, void *module) {
	summarizeBody((uintptr_t)filter, false, yieldDue());
	return trailers_continue;
}

int envoy_dynamic_module_on_http_filter_response_headers(void *filter, void *module, bool end_of_stream) { return 0; }
int envoy_dynamic_module_on_http_filter_response_body(void *filter, void *module, bool end_of_stream) { return 0; }
int envoy_dynamic_module_on_http_filter_response_trailers(void *filter, void *module) { return 0; }

// Hooks for features this filter does not use (callouts, timers, the
// downstream's write buffer); Envoy requires them all.
void envoy_dynamic_module_on_http_filter_http_callout_done(void) {}
void envoy_dynamic_module_on_http_filter_http_stream_headers(void) {}
void envoy_dynamic_module_on_http_filter_http_stream_data(void) {}
void envoy_dynamic_module_on_http_filter_http_stream_trailers(void) {}
void envoy_dynamic_module_on_http_filter_http_stream_complete(void) {}
void envoy_dynamic_module_on_http_filter_http_stream_reset(void) {}
void envoy_dynamic_module_on_http_filter_scheduled(void) {}
void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(void) {}
void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(void) {}

// Envoy's callbacks: a body's slices, and dynamic metadata. Envoy's binary
// defines them; weak, so that the package also links on its own (go build
// ./..., go vet).
extern size_t envoy_dynamic_module_callback_http_get_body_chunks_size(void *filter, int body_type) __attribute__((weak));
extern bool envoy_dynamic_module_callback_http_get_body_chunks(void *filter, int body_type, sy_buffer *out) __attribute__((weak));
extern void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(void *filter, sy_buffer ns, sy_buffer key, sy_buffer value)
	__attribute__((weak));

size_t sy_body_chunks_size(uintptr_t filter, int body_type) {
	return envoy_dynamic_module_callback_http_get_body_chunks_size((void *)filter, body_type);
}

bool sy_body_chunks(uintptr_t filter, int body_type, sy_buffer *out) {
	return envoy_dynamic_module_callback_http_get_body_chunks((void *)filter, body_type, out);
}

void sy_set_metadata(uintptr_t filter, sy_buffer ns, sy_buffer key, sy_buffer value) {
	envoy_dynamic_module_callback_http_set_dynamic_metadata_string((void *)filter, ns, key, value);
}
