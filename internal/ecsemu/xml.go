package ecsemu

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
)

// jsonToXML renders a JSON answer the way the RPC gateway renders
// Format=XML: the object's fields as elements in order under root, a list
// as its elements repeated under the list's own name
// ({"Regions":{"Region":[a,b]}} → <Regions><Region>a</Region><Region>b</Region></Regions>).
func jsonToXML(root string, data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xmlValue(dec, &buf, root); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func xmlValue(dec *json.Decoder, w *bytes.Buffer, name string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			fmt.Fprintf(w, "<%s>", name)
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := kt.(string)
				if err := xmlValue(dec, w, key); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // }
				return err
			}
			fmt.Fprintf(w, "</%s>", name)
		case '[':
			for dec.More() {
				if err := xmlValue(dec, w, name); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ]
				return err
			}
		default:
			return fmt.Errorf("unexpected %v", t)
		}
	case nil:
		fmt.Fprintf(w, "<%s></%s>", name, name)
	default:
		fmt.Fprintf(w, "<%s>", name)
		if err := xml.EscapeText(w, []byte(fmt.Sprint(t))); err != nil {
			return err
		}
		fmt.Fprintf(w, "</%s>", name)
	}
	return nil
}
