package policy

import (
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// secretKeys are key names that hold credentials. The file is often
// committed to git and echoed by ListPolicies, so credentials are refused
// wherever they appear, even under an unknown key.
var secretKeys = map[string]bool{
	"access_key_id": true, "access_key_secret": true, "accesskeyid": true, "accesskeysecret": true,
	"access_key": true, "secret_key": true, "secret": true, "secret_access_key": true,
	"password": true, "passwd": true, "token": true, "security_token": true, "sts_token": true,
	"private_key": true, "client_secret": true, "api_key": true, "credentials": true,
}

func isSecretKey(k string) bool {
	k = strings.ToLower(strings.ReplaceAll(k, "-", "_"))
	return secretKeys[k]
}

// accessKeyRE matches Alibaba Cloud AccessKey IDs anywhere in a value.
var accessKeyRE = regexp.MustCompile(`LTAI[A-Za-z0-9]{12,30}`)

func looksLikeAccessKey(s string) bool { return accessKeyRE.MatchString(s) }

// redactAccessKeys hides every access-key-shaped substring of s. The
// regexp only runs on the rare message that could hold one.
func redactAccessKeys(s string) string {
	if !strings.Contains(s, "LTAI") {
		return s
	}
	return accessKeyRE.ReplaceAllString(s, "LTAI****")
}

const credentialHint = "credentials never belong in this file: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, use ~/.aliyun/config.json, or a RAM role"

// scanSecrets reports every secret key and every value that looks like an
// access key, without echoing the value. It walks the tree as written (an
// alias is scanned where its anchor is), so it costs one visit per node.
func (d *decoder) scanSecrets(n *yaml.Node) {
	type item struct {
		n     *yaml.Node
		depth int
	}
	stack := []item{{n, 0}}
	deep := false
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if it.n == nil {
			continue
		}
		if it.depth > maxDepth {
			if !deep {
				deep = true
				d.errorf(it.n, scope{}, "the file nests deeper than %d levels", maxDepth)
			}
			continue
		}
		switch it.n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(it.n.Content); i += 2 {
				k := it.n.Content[i]
				if k.Kind == yaml.ScalarNode && isSecretKey(k.Value) {
					d.errorf(k, scope{}, "key %q holds a secret; %s", k.Value, credentialHint)
				}
			}
			fallthrough
		case yaml.SequenceNode, yaml.DocumentNode:
			for i := len(it.n.Content) - 1; i >= 0; i-- {
				stack = append(stack, item{it.n.Content[i], it.depth + 1})
			}
		case yaml.ScalarNode:
			if looksLikeAccessKey(it.n.Value) {
				d.errorf(it.n, scope{}, "a value looks like an Alibaba Cloud AccessKey ID (not shown); %s", credentialHint)
			}
		}
	}
}
