// Package bedrock speaks AWS Bedrock's runtime for the gateway: requests
// signed with SigV4 from credentials of the AWS default chain (kept fresh
// in the background, never fetched on a request's path), Messages bodies
// turned into InvokeModel bodies, the event-stream framing of streamed
// answers turned into server-sent events as it arrives, and Bedrock's
// errors into the Messages API's.
package bedrock
