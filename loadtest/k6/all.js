// Both scenarios in one run, one after the other: the staged chat load, then
// the streaming load. This is what `docker compose --profile loadtest up`
// runs for each path.
//
//   k6 run -e TARGET=gateway_hook loadtest/k6/all.js
import { options as chatOptions, chat } from './chat.js';
import { options as streamOptions, stream } from './stream.js';

function seconds(d) {
  const m = /^(\d+)(ms|s|m)$/.exec(d);
  if (!m) {
    throw new Error(`cannot parse duration ${d}`);
  }
  const n = parseInt(m[1], 10);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
}

// The streaming scenario starts when the staged one has ended.
const chatSeconds = chatOptions.scenarios.chat.stages.reduce((s, st) => s + seconds(st.duration), 0) +
  seconds(chatOptions.scenarios.chat.gracefulRampDown);

export const options = {
  scenarios: {
    chat: chatOptions.scenarios.chat,
    stream: Object.assign({}, streamOptions.scenarios.stream, { startTime: `${chatSeconds}s` }),
  },
  thresholds: Object.assign({}, chatOptions.thresholds, { ttfb_ms: streamOptions.thresholds.ttfb_ms }),
  summaryTrendStats: chatOptions.summaryTrendStats,
  tags: chatOptions.tags,
};

export { chat, stream };
