package routing

// errGeminiEndpoint refuses an endpoint with no Gemini translation.
func errGeminiEndpoint(model string) error {
	return Errorf(KindInvalidRequest, "model %q is served by the Gemini API, reached only from chat completions and messages", model)
}
