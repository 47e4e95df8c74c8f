package buckets

// LLM are bounds for what a model takes, in seconds: a first token in tens
// of milliseconds to a long answer in minutes (OpenTelemetry's gen_ai
// duration buckets, extended to ten minutes).
var LLM = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84, 327.68, 655.36}
