package envoy

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
)

// header opens every printed config.
const header = "# Envoy " + Version + " configuration for Switchyard, printed by `extproc envoy-config`.\n" +
	"# Do not edit a printed copy by hand: it is built in Go (envoy/build.go and its neighbours), where\n" +
	"# the comments explain each choice; regenerate the committed copies with `go test ./envoy -update`.\n"

// Render writes the static config for o (BuildBootstrap) as YAML.
func Render(w io.Writer, o Options) error {
	bs, err := BuildBootstrap(o)
	if err != nil {
		return err
	}
	return writeYAML(w, bs)
}

func writeYAML(w io.Writer, bs proto.Message) error {
	b, err := marshalYAML(bs)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, header); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// marshalYAML prints m as Envoy reads it: the proto3 JSON mapping (field
// names as in the .proto files, every Any with its @type), written as YAML
// in block style, with short lists and maps of plain values on one line.
func marshalYAML(m proto.Message) ([]byte, error) {
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding envoy config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(j, &doc); err != nil {
		return nil, fmt.Errorf("converting envoy config to YAML: %w", err)
	}
	restyle(&doc)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("writing envoy config as YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("writing envoy config as YAML: %w", err)
	}
	return b.Bytes(), nil
}

// flowWidth is how long a list or map of plain values may be to go on one
// line; flowPairs how many fields such a map may have.
const (
	flowWidth = 72
	flowPairs = 3
)

// restyle drops the JSON quoting and braces the parser kept: scalars are
// quoted only where YAML needs it, and collections are blocks unless they
// are short and hold only scalars.
func restyle(n *yaml.Node) {
	for _, c := range n.Content {
		restyle(c)
	}
	switch n.Kind {
	case yaml.ScalarNode:
		n.Style = 0
		if strings.Contains(n.Value, "\n") {
			// A format string ending in a newline reads better escaped
			// than as a block scalar.
			n.Style = yaml.DoubleQuotedStyle
		}
	case yaml.MappingNode, yaml.SequenceNode:
		n.Style = 0
		if short(n) {
			n.Style = yaml.FlowStyle
		}
	}
}

// short reports whether n holds only scalars and fits on a line.
func short(n *yaml.Node) bool {
	if len(n.Content) == 0 || n.Kind == yaml.MappingNode && len(n.Content) > 2*flowPairs {
		return false
	}
	width := 0
	for _, c := range n.Content {
		if c.Kind != yaml.ScalarNode || strings.Contains(c.Value, "\n") {
			return false
		}
		width += len(c.Value) + 2
	}
	return width <= flowWidth
}
