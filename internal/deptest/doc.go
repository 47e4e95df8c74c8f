// Package deptest holds the tests that keep each concern in its package:
// only processor speaks Envoy's protos, only luahooks embeds Lua, routing
// depends on neither, and the gateway binary links none of the load-test
// tools or test helpers.
package deptest
