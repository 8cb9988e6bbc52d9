package policy
import ("testing";"strings";"gopkg.in/yaml.v3";"bytes")
func TestProf(t *testing.T){
	var b strings.Builder
	b.WriteString("version: 1\nx-p: &p {name: a, source: {region: cn-hangzhou, images: {name: \"*\"}}, destinations: [cn-beijing]}\npolicies: [")
	b.WriteString(strings.TrimSuffix(strings.Repeat("*p,", 200_000), ","))
	b.WriteString("]\n")
	m := allocated(func(){ var n yaml.Node; yaml.NewDecoder(bytes.NewReader([]byte(b.String()))).Decode(&n) })
	t.Logf("yaml parse: %d MiB", m>>20)
	m = allocated(func(){ Parse("x", []byte(b.String())) })
	t.Logf("Parse: %d MiB", m>>20)
}
