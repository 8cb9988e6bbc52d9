package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
)

// marshalJSONLine renders m as protojson on one line. protojson
// deliberately varies its whitespace between builds; compacting it makes the
// output stable for diffs and golden files.
func marshalJSONLine(m proto.Message) ([]byte, error) {
	raw, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// marshalYAML renders m as a YAML document with the protojson field names
// and order, so json and yaml output show the same fields.
func marshalYAML(m proto.Message) ([]byte, error) {
	raw, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	blockStyle(&doc)
	var buf bytes.Buffer
	buf.WriteString("---\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// blockStyle turns JSON's flow style and quoting into plain block YAML; the
// encoder still quotes strings that would otherwise read as another type.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// printMessage writes m as one JSON line or one YAML document.
func printMessage(w io.Writer, format string, m proto.Message) error {
	var (
		b   []byte
		err error
	)
	switch format {
	case "json":
		b, err = marshalJSONLine(m)
	case "yaml":
		b, err = marshalYAML(m)
	default:
		return fmt.Errorf("printMessage: format %q", format)
	}
	if err != nil {
		return fmt.Errorf("encoding output: %v", err)
	}
	_, err = w.Write(b)
	return err
}
