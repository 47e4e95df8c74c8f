// Shared pieces of the Switchyard k6 scripts: which path to hit, the request
// every path receives, and the checks on its answer.
//
// TARGET selects the path (direct | envoy | gateway | gateway_hook); each
// path's base URL can be overridden with DIRECT_URL, ENVOY_URL, GATEWAY_URL
// and GATEWAY_HOOK_URL. MODEL names the model sent in the body.
import { check } from 'k6';

export const TARGETS = {
  // The mock LLM upstream itself: the baseline every other path is compared with.
  direct: { url: __ENV.DIRECT_URL || 'http://127.0.0.1:8081', headers: {} },
  // Envoy with the same route but no ext_proc filter: the cost of the proxy hop alone.
  envoy: { url: __ENV.ENVOY_URL || 'http://127.0.0.1:10001', headers: {} },
  // Envoy + extproc: the gateway as deployed.
  gateway: { url: __ENV.GATEWAY_URL || 'http://127.0.0.1:10000', headers: {} },
  // Envoy + extproc with a request that triggers a typical Lua hook (x-team).
  // The compose stack's gateway config has no hooks enabled, so there this
  // path runs no hook; the checks below hold either way.
  gateway_hook: { url: __ENV.GATEWAY_HOOK_URL || 'http://127.0.0.1:10000', headers: { 'x-team': 'bench' } },
};

export const TARGET = __ENV.TARGET || 'direct';
if (!(TARGET in TARGETS)) {
  throw new Error(`unknown TARGET ${TARGET}; want one of ${Object.keys(TARGETS).join(', ')}`);
}

export const MODEL = __ENV.MODEL || 'mock-gpt';
export const BASE_URL = TARGETS[TARGET].url;
export const CHAT_URL = `${BASE_URL}/v1/chat/completions`;

// The same small chat request on every path.
export function chatBody(stream) {
  return JSON.stringify({
    model: MODEL,
    messages: [
      { role: 'system', content: 'You are a terse assistant.' },
      { role: 'user', content: 'Say hello in one short sentence.' },
    ],
    max_tokens: 32,
    stream: stream,
  });
}

export function params() {
  return {
    headers: Object.assign({ 'content-type': 'application/json' }, TARGETS[TARGET].headers),
    tags: { target: TARGET },
    timeout: '60s',
  };
}

// checkChat verifies a non-streamed chat completion.
export function checkChat(res) {
  return check(res, {
    'status is 200': (r) => r.status === 200,
    'body is a chat.completion': (r) => {
      try {
        const b = r.json();
        return b.object === 'chat.completion' &&
          Array.isArray(b.choices) && b.choices.length > 0 &&
          typeof b.choices[0].message.content === 'string' &&
          typeof b.usage === 'object' && b.usage.total_tokens > 0;
      } catch (e) {
        return false;
      }
    },
  });
}

// checkStream verifies a streamed chat completion: SSE data lines of
// chat.completion.chunk objects ending with [DONE].
export function checkStream(res) {
  return check(res, {
    'status is 200': (r) => r.status === 200,
    'content-type is text/event-stream': (r) => String(r.headers['Content-Type'] || '').startsWith('text/event-stream'),
    'body is an SSE chunk stream ending in [DONE]': (r) => {
      const body = String(r.body || '');
      const lines = body.split('\n').filter((l) => l !== '');
      if (lines.length < 2 || lines[lines.length - 1] !== 'data: [DONE]') {
        return false;
      }
      try {
        return JSON.parse(lines[0].slice('data: '.length)).object === 'chat.completion.chunk';
      } catch (e) {
        return false;
      }
    },
  });
}
