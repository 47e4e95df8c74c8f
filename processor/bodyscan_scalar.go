//go:build !(goexperiment.simd && amd64)

package processor

// vectorScan is off: this build has no vector string scan (see
// bodyscan_vector.go).
const vectorScan = false

func skipVector(b []byte, i int, escaped bool) (int, bool, bool) { return i, escaped, false }
