package processor

// rewriter turns a translated request's answer into the client's API.
type rewriter struct {
	status int // the status the client gets
}

func newRewriter(j *responseJob, status int, stream bool) *rewriter {
	return &rewriter{status: status}
}

func (w *rewriter) write(chunk []byte, eos bool) []byte { return chunk }
