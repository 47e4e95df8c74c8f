// The event hooks Envoy 1.40's dynamic module filter
// (envoy.filters.http.dynamic_modules) looks up in this library, and the
// few of its callbacks they use, declared from its ABI. The hooks are C;
// a body's pieces (read_piece) and its end (summarize) reach Go.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "_cgo_export.h"

// Envoy's callbacks: a body's slices, and dynamic metadata. Envoy's binary
// defines them; weak, so that the package also links on its own (go build
// ./..., go vet).
extern size_t envoy_dynamic_module_callback_http_get_body_chunks_size(void *filter, int body_type) __attribute__((weak));
extern bool envoy_dynamic_module_callback_http_get_body_chunks(void *filter, int body_type, sy_buffer *out) __attribute__((weak));
extern void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(void *filter, sy_buffer ns, sy_buffer key, sy_buffer value)
	__attribute__((weak));

// The pipe to the Go side's summarizer (startSummarizer; -1: none), and
// where summaries go (set by Go), both made when Envoy loads the library.
static int jobs = -1;
sy_buffer sy_namespace, sy_key;

// When a thread hands a body over rather than summarizing it itself
// (summarize): when it has been quiet, or, as SWITCHYARD_BODY_HANDOFF
// says in Envoy's environment, always or never.
static enum { handoff_when_quiet, handoff_always, handoff_never } handoff;

// The size of a request's scan (scanSize).
static size_t scan_size;

// Envoy calls this once, when it loads the library; it returns the ABI
// version this library was written against (Envoy 1.40's).
const char *envoy_dynamic_module_on_program_init(void) {
	const char *mode = getenv("SWITCHYARD_BODY_HANDOFF");
	if (mode != NULL && strcmp(mode, "always") == 0) {
		handoff = handoff_always;
	} else if (mode != NULL && strcmp(mode, "never") == 0) {
		handoff = handoff_never;
	}
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0) {
		fds[0] = fds[1] = -1;
	}
	// The summarizer owns the read end from here, closing it if it fails.
	if (startSummarizer(fds[0])) {
		jobs = fds[1];
	} else if (fds[1] >= 0) {
		close(fds[1]);
	}
	scan_size = scanSize();
	return "v0.2.0";
}

// One filter config serves every request; a request's filter object is
// its sy_request.
static char state;

// sy_request is a request's: its body's scan when the body is scanned
// piece by piece as Envoy receives it (read_piece), NULL when it is
// scanned whole at its end.
typedef struct {
	void *scan;
	bool started; // its first piece has come
	bool here;    // and found its thread busy: the thread scans it itself
	bool broken;  // scanning a piece failed: no summary
} sy_request;

// A request whose sy_request could not be allocated shares this one, which
// read_piece leaves as it is: its body is scanned whole.
static sy_request whole;

const void *envoy_dynamic_module_on_http_filter_config_new(void *config, sy_buffer name, sy_buffer value) { return &state; }
void envoy_dynamic_module_on_http_filter_config_destroy(void *config) {}
const void *envoy_dynamic_module_on_http_filter_per_route_config_new(sy_buffer name, sy_buffer value) { return &state; }
void envoy_dynamic_module_on_http_filter_per_route_config_destroy(void *config) {}
void *envoy_dynamic_module_on_http_filter_new(void *config, void *filter) {
	sy_request *r = calloc(1, sizeof *r);
	return r != NULL ? r : &whole;
}
void envoy_dynamic_module_on_http_filter_destroy(void *module) {
	sy_request *r = module;
	if (r != &whole) {
		free(r->scan);
		free(r);
	}
}
void envoy_dynamic_module_on_http_filter_stream_complete(void *filter, void *module) {}

// Statuses, as Envoy's FilterHeadersStatus and FilterDataStatus number them,
// and its two bodies: the one buffered, and the chunk being handed over.
enum { headers_continue = 0, headers_stop_iteration = 1 };
enum { body_continue = 0, body_stop_and_buffer = 1 };
enum { trailers_continue = 0 };
enum { received_body = 0, buffered_body = 1 };

static void read_piece(void *filter, sy_request *r);
static void summarize(void *filter, sy_request *r, bool received);

// A request with a body waits for all of it: its headers stop until then.
int envoy_dynamic_module_on_http_filter_request_headers(void *filter, void *module, bool end_of_stream) {
	return end_of_stream ? headers_continue : headers_stop_iteration;
}

// Envoy buffers the body until its end, which is summarized.
int envoy_dynamic_module_on_http_filter_request_body(void *filter, void *module, bool end_of_stream) {
	if (!end_of_stream) {
		read_piece(filter, module);
		return body_stop_and_buffer;
	}
	summarize(filter, module, true);
	return body_continue;
}

// A body that ends with trailers is all buffered by then.
int envoy_dynamic_module_on_http_filter_request_trailers(void *filter, void *module) {
	summarize(filter, module, false);
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

// This thread's job: the slices of the body or piece being scanned, and room for
// its summary (a longer one is not kept: extproc then asks for the body).
static __thread sy_job job;
static __thread size_t slices_cap;

enum { summary_cap = 64 << 10 };

// A thread busy with bodies (its last piece of one less than busy_ns ago)
// calls into Go itself, passing the Go scheduler every busy_ns, and scans
// each piece as Envoy hands it over (read_piece), while the piece's bytes
// are still in the CPU's caches, without copying them; a quiet one hands
// the body over whole, at its end, to the Go side's summarizer. A thread
// that calls into Go keeps a Go processor between calls. When its calls
// stop for 10 ms, the runtime's monitor takes the processor back and then
// polls every 20 us for a millisecond or more: for a thread that calls
// once in a while, some 60 wakeups of Envoy's process, about 1 ms of CPU,
// per request. On a busy thread the processor is never idle that long, but
// its count of scheduled goroutines does not move unless it passes the
// scheduler, and the monitor takes that for a goroutine running too long:
// without the pass it took the processor back every 10 ms all the same.
// The handoff costs two thread switches per body; a busy thread's own
// calls none but the pass's two every busy_ns.
enum { busy_ns = 5000000 };

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// This thread's last piece of a body, and its last pass of the scheduler.
static __thread int64_t last, passed;

// busy reports whether this thread scans a body that comes now itself,
// as SWITCHYARD_BODY_HANDOFF says or as busy as it is, and notes the time.
static bool busy(int64_t now) {
	bool here = jobs < 0 || handoff == handoff_never || (handoff == handoff_when_quiet && now - last < busy_ns);
	last = now;
	return here;
}

// pass reports whether a call into Go now passes the scheduler first.
static bool pass(int64_t now) {
	if (now - passed < busy_ns) {
		return false;
	}
	passed = now;
	return true;
}

static bool gather(void *filter, int body_type);
static bool hand_over(void);

// read_piece scans the piece of r's body Envoy is handing over when r's
// first piece came to a busy thread.
static void read_piece(void *filter, sy_request *r) {
	if (r == &whole) {
		return;
	}
	int64_t now = now_ns();
	if (!r->started) {
		r->started = true;
		r->here = busy(now);
		if (r->here && scan_size > 0) {
			r->scan = calloc(1, scan_size);
		}
	}
	if (r->scan == NULL || r->broken) {
		return;
	}
	last = now;
	job.count = 0;
	job.scan = r->scan;
	r->broken = !gather(filter, received_body) || !scanPiece(&job, pass(now));
}

// summarize has r's body summarized, what its scan has not read of it
// (Envoy's buffered body and, with received, the chunk being handed over),
// then leaves the summary in the request's dynamic metadata. A failure
// leaves none: extproc then asks for the body.
static void summarize(void *filter, sy_request *r, bool received) {
	if (job.summary == NULL) {
		if ((job.summary = malloc(summary_cap)) == NULL) {
			return;
		}
		job.summary_cap = summary_cap;
	}
	job.summary_len = 0;
	job.count = 0;
	job.scan = r->scan;
	if (r->broken || !gather(filter, buffered_body)) {
		return;
	}
	job.buffered = job.count;
	if (received && !gather(filter, received_body)) {
		return;
	}
	// Where the body is scanned was decided at its first piece, if it
	// came before its end: a body handed over at its end would otherwise
	// find the thread busy with its own first piece.
	int64_t now = now_ns();
	bool here = r->started ? r->here : busy(now);
	if (here) {
		summarizeHere(&job, pass(now));
	} else if (!hand_over()) {
		return;
	}
	if (job.summary_len > 0) {
		sy_buffer value = {job.summary, job.summary_len};
		envoy_dynamic_module_callback_http_set_dynamic_metadata_string(filter, sy_namespace, sy_key, value);
	}
}

// gather appends the slices of one of the request's bodies to the job.
static bool gather(void *filter, int body_type) {
	size_t n = envoy_dynamic_module_callback_http_get_body_chunks_size(filter, body_type);
	if (n == 0) {
		return true;
	}
	if (job.count + n > slices_cap) {
		size_t cap = (job.count + n) * 2;
		sy_buffer *grown = realloc((void *)job.slices, cap * sizeof *grown);
		if (grown == NULL) {
			return false;
		}
		job.slices = grown;
		slices_cap = cap;
	}
	if (!envoy_dynamic_module_callback_http_get_body_chunks(filter, body_type, (sy_buffer *)job.slices + job.count)) {
		return false;
	}
	job.count += n;
	return true;
}

// hand_over writes the job to the Go side's summarizer and waits until it
// is done.
static bool hand_over(void) {
	__atomic_store_n(&job.done, 0, __ATOMIC_RELAXED);
	sy_job *p = &job;
	if (write(jobs, &p, sizeof p) != sizeof p) {
		return false;
	}
	while (__atomic_load_n(&job.done, __ATOMIC_ACQUIRE) == 0) {
		syscall(SYS_futex, &job.done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	}
	return true;
}
