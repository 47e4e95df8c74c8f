//go:build !(goexperiment.simd && amd64)

package bodyscan

// vectorScan is off: this build has no vector string scan (see
// bodyscan_vector.go).
const vectorScan = false

func skipVector(b []byte, i int, escaped, _ bool) (int, bool, bool, bool) {
	return i, escaped, false, false
}

const blockScan = false

type block struct{ at int }

func (s *Result) strBlocks(b []byte, i int) (int, bool, bool) { return i, false, false }

func (s *Result) strCached(int) (int, bool, bool) { return 0, false, false }
