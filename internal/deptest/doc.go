// Package deptest holds the test that keeps each concern in its package:
// only processor speaks Envoy's protos, only luahooks embeds Lua, and
// routing depends on neither.
package deptest
