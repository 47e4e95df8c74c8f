package translate

import (
	"github.com/tidwall/gjson"
)

// fieldRule checks one top-level request field and returns why it is
// refused, or "" when it is translated or dropped.
type fieldRule func(v gjson.Result) (refusal string)

// accept is the rule of a field that is translated, or dropped because it
// has no equivalent and does not change what the answer means (README.md
// names which).
func accept(gjson.Result) string { return "" }

// refuseUnless accepts a field while ok holds (typically: absent, null or
// the neutral value) and refuses it with reason otherwise.
func refuseUnless(ok func(gjson.Result) bool, reason string) fieldRule {
	return func(v gjson.Result) string {
		if v.Type == gjson.Null || ok(v) {
			return ""
		}
		return reason
	}
}

func isZero(v gjson.Result) bool  { return v.Type == gjson.Number && v.Float() == 0 }
func isFalse(v gjson.Result) bool { return v.Type == gjson.False }
func isEmpty(v gjson.Result) bool {
	return (v.IsObject() || v.IsArray()) && len(v.Array()) == 0 && len(v.Map()) == 0
}
func refuseAlways(reason string) fieldRule { return func(gjson.Result) string { return reason } }

// wrongType refuses the field whose raw value v is not nil and not ok,
// saying what it must be.
func wrongType(v []byte, ok bool, field, what string) *Error {
	if v == nil || ok {
		return nil
	}
	return refuse("%s: want %s", field, what)
}

// firstError is the first of errs that is not nil.
func firstError(errs ...*Error) *Error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// checkFields applies rules to every top-level field of body. A field with
// no rule is refused: a field this package does not know could change the
// answer, and a clear 400 is better than an answer that silently ignores it.
func (e *ends) checkFields(body []byte, rules map[string]fieldRule, upstreamAPI string) *Error {
	if kind(body) != '{' { // JSON, but not an object (package doc)
		return refuse("the request body is not a JSON object")
	}
	return e.members(body, func(name string, v []byte) *Error { return fieldRefusal(rules, name, v, upstreamAPI) })
}

// fieldRefusal applies rules to the top-level field name whose raw value is v.
func fieldRefusal(rules map[string]fieldRule, name string, v []byte, upstreamAPI string) *Error {
	rule, known := rules[name]
	if !known {
		return refuse("field %q cannot be translated to the %s API", name, upstreamAPI)
	}
	if why := rule(gjson.Parse(inPlace(v))); why != "" {
		return refuse("%s: %s", name, why)
	}
	return nil
}
