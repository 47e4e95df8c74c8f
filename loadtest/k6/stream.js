// Streaming scenario: a constant number of VUs (VUS, default 50) send the
// same chat request with "stream": true for DURATION (default 60s) against
// TARGET. Time to first byte is http_req_waiting; ttfb_ms repeats it as its
// own trend so the summary shows it next to the whole stream's duration.
//
//   k6 run -e TARGET=gateway loadtest/k6/stream.js
import http from 'k6/http';
import { Trend } from 'k6/metrics';
import { CHAT_URL, chatBody, checkStream, params, TARGET } from './lib.js';

export const options = {
  scenarios: {
    stream: {
      executor: 'constant-vus',
      vus: parseInt(__ENV.VUS || '50', 10),
      duration: __ENV.DURATION || '60s',
      exec: 'stream',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    // 60 ms before the first chunk on the mock.
    ttfb_ms: ['p(50)<100', 'p(99)<500'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max'],
  tags: { target: TARGET },
};

const ttfb = new Trend('ttfb_ms', true);
const body = chatBody(true);
const reqParams = params();

export function stream() {
  const res = http.post(CHAT_URL, body, reqParams);
  ttfb.add(res.timings.waiting);
  checkStream(res);
}
