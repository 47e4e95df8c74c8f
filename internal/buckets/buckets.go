// Package buckets holds the histogram buckets the gateway's metrics share,
// so that durations measured in different packages can be compared.
package buckets

// Work is for work done inside one request, from microseconds to tens of
// milliseconds: a routing decision, a hook call.
var Work = []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2}
