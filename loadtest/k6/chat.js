// Staged closed-loop load: 50, 150, 300, 500 and 1000 virtual users each
// send the same non-streamed chat request in a loop against TARGET.
//
//   k6 run -e TARGET=gateway loadtest/k6/chat.js
//
// STAGE (default 60s) is how long each VU level is held, RAMP (default 10s)
// how long it takes to reach it. VUS="50,150" picks other levels.
import http from 'k6/http';
import { CHAT_URL, chatBody, checkChat, params, TARGET } from './lib.js';

const levels = (__ENV.VUS || '50,150,300,500,1000').split(',').map((s) => parseInt(s, 10));
const hold = __ENV.STAGE || '60s';
const ramp = __ENV.RAMP || '10s';

const stages = [];
for (const vus of levels) {
  stages.push({ duration: ramp, target: vus });
  stages.push({ duration: hold, target: vus });
}
stages.push({ duration: ramp, target: 0 });

export const options = {
  discardResponseBodies: false,
  scenarios: {
    chat: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: stages,
      gracefulRampDown: '10s',
      exec: 'chat',
    },
  },
  thresholds: {
    // Fail the run when more than 1% of requests fail or the body is wrong.
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    // The mock answers after 60 ms; anything far above that is the path's cost.
    'http_req_duration{scenario:chat}': ['p(50)<100', 'p(99)<500'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max'],
  tags: { target: TARGET },
};

const body = chatBody(false);
const reqParams = params();

export function chat() {
  checkChat(http.post(CHAT_URL, body, reqParams));
}
