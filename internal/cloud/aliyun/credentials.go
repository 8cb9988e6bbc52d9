package aliyun

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
)

// Credentials are a static access key pair, with the STS token when the
// pair is temporary. The zero value means "find them the usual way": the
// SDK's default chain (environment variables, the Alibaba Cloud CLI profile
// in ~/.aliyun/config.json in any of its modes, ~/.alibabacloud/credentials,
// the ECS RAM role of the instance, ALIBABA_CLOUD_CREDENTIALS_URI).
//
// Every way of printing or encoding Credentials redacts the secret and the
// token, so a Config can be logged whole.
type Credentials struct {
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
}

// CredentialsFromEnv reads ALIBABA_CLOUD_ACCESS_KEY_ID,
// ALIBABA_CLOUD_ACCESS_KEY_SECRET and, if set, ALIBABA_CLOUD_SECURITY_TOKEN
// through the SDK's environment provider. ok is false unless both key
// variables are set.
func CredentialsFromEnv() (Credentials, bool) {
	cc, err := credentials.NewEnvironmentVariableCredentialsProvider().GetCredentials()
	if err != nil || cc == nil {
		return Credentials{}, false
	}
	return Credentials{AccessKeyID: cc.AccessKeyId, AccessKeySecret: cc.AccessKeySecret, SecurityToken: cc.SecurityToken}, true
}

// IsZero reports whether c is the zero value, which selects the default chain.
func (c Credentials) IsZero() bool { return c == Credentials{} }

func (c Credentials) validate() error {
	switch {
	case c.IsZero():
		return nil
	case c.AccessKeyID == "":
		return errors.New("credentials: AccessKeyID is empty but a secret or token is set")
	case c.AccessKeySecret == "":
		return errors.New("credentials: AccessKeySecret is empty")
	}
	return nil
}

// String shows the key id (shortened) and whether a secret and a token are
// set, never their values.
func (c Credentials) String() string {
	if c.IsZero() {
		return "Credentials{default chain}"
	}
	return fmt.Sprintf("Credentials{AccessKeyID: %s, AccessKeySecret: %s, SecurityToken: %s}",
		maskID(c.AccessKeyID), redacted(c.AccessKeySecret), redacted(c.SecurityToken))
}

// GoString is String, so %#v redacts too.
func (c Credentials) GoString() string { return c.String() }

// Format makes every fmt verb (%v, %+v, %#v, %s, %q, ...) print String.
func (c Credentials) Format(f fmt.State, verb rune) { fmt.Fprint(f, c.String()) }

// MarshalJSON redacts, for structured loggers that encode values as JSON.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{
		"AccessKeyID":     maskID(c.AccessKeyID),
		"AccessKeySecret": redacted(c.AccessKeySecret),
		"SecurityToken":   redacted(c.SecurityToken),
	})
}

// LogValue redacts for log/slog.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "[REDACTED]"
}

// maskID keeps the last four characters of an access key id: enough to tell
// keys apart in a log, not enough to use one. (The id is not a secret, ECS
// puts it in every URL, but there is no reason to spread it whole.)
func maskID(id string) string {
	if len(id) <= 4 {
		return strings.Repeat("*", len(id))
	}
	return "****" + id[len(id)-4:]
}

// credentialSource is the SDK provider the pool signs with. The SDK's
// providers are not safe for concurrent use (the default chain remembers the
// last provider it used; the RAM-role providers refresh session keys in
// place), so every pooled client shares one source behind a mutex. It also
// remembers the secrets it handed out, so that errors can be scrubbed of them
// whatever the source.
type credentialSource struct {
	mu    sync.Mutex
	inner credentials.CredentialsProvider
	// rebuild, when set, replaces inner after a failure. The SDK's default
	// chain remembers the provider it tried last even when every provider
	// failed, and from then on asks only that one: a daemon that found no
	// credentials once (metadata service or profile not there yet) would
	// never look at the others again. A fresh chain looks at them all.
	rebuild func() credentials.CredentialsProvider
	secrets []string
	ids     []string // access key ids seen, shown masked
	last    string   // the key id and provider of the last credentials, masked
}

func newCredentialSource(c Credentials) *credentialSource {
	var inner credentials.CredentialsProvider
	var rebuild func() credentials.CredentialsProvider
	switch {
	case c.IsZero():
		rebuild = func() credentials.CredentialsProvider { return credentials.NewDefaultCredentialsProvider() }
		inner = rebuild()
	case c.SecurityToken != "":
		inner = credentials.NewStaticSTSCredentialsProvider(c.AccessKeyID, c.AccessKeySecret, c.SecurityToken)
	default:
		inner = credentials.NewStaticAKCredentialsProvider(c.AccessKeyID, c.AccessKeySecret)
	}
	s := &credentialSource{inner: inner, rebuild: rebuild}
	s.remember(c.AccessKeySecret, c.SecurityToken)
	s.rememberID(c.AccessKeyID)
	return s
}

// GetCredentials implements credentials.CredentialsProvider.
func (s *credentialSource) GetCredentials() (*credentials.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cc, err := s.inner.GetCredentials()
	if err != nil {
		if s.rebuild != nil {
			s.inner = s.rebuild()
		}
		return nil, &credentialError{msg: s.scrubLocked(err.Error())}
	}
	if cc == nil || cc.AccessKeyId == "" || (cc.AccessKeySecret == "" && cc.BearerToken == "") {
		return nil, &credentialError{msg: "the credential source returned an empty access key"}
	}
	s.rememberLocked(cc.AccessKeySecret, cc.SecurityToken, cc.BearerToken)
	s.rememberIDLocked(cc.AccessKeyId)
	s.last = maskID(cc.AccessKeyId)
	if cc.ProviderName != "" {
		s.last += " from " + cc.ProviderName
	}
	return cc, nil
}

// summary is the masked key id and provider of the last credentials, "" if
// none were resolved yet.
func (s *credentialSource) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *credentialSource) rememberID(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rememberIDLocked(id)
}

func (s *credentialSource) rememberIDLocked(id string) {
	if len(id) <= 4 {
		return
	}
	for _, known := range s.ids {
		if known == id {
			return
		}
	}
	s.ids = append(s.ids, id)
	if len(s.ids) > maxRememberedSecrets {
		s.ids = append(s.ids[:0], s.ids[len(s.ids)-maxRememberedSecrets:]...)
	}
}

// GetProviderName implements credentials.CredentialsProvider.
func (s *credentialSource) GetProviderName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inner.GetProviderName()
}

func (s *credentialSource) remember(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rememberLocked(values...)
}

func (s *credentialSource) rememberLocked(values ...string) {
next:
	for _, v := range values {
		// Very short values would scrub innocent text and are not secrets
		// anyone issues.
		if len(v) < 6 {
			continue
		}
		for _, known := range s.secrets {
			if known == v {
				continue next
			}
		}
		s.secrets = append(s.secrets, v)
		// Session keys (RAM roles, STS) are replaced every hour or so; the
		// recent ones are the only ones that can still turn up in an answer.
		if len(s.secrets) > maxRememberedSecrets {
			s.secrets = append(s.secrets[:0], s.secrets[len(s.secrets)-maxRememberedSecrets:]...)
		}
	}
}

// maxRememberedSecrets bounds the scrub list of a long-running daemon.
const maxRememberedSecrets = 16

// scrub removes every secret this source has seen from s.
func (s *credentialSource) scrub(text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scrubLocked(text)
}

func (s *credentialSource) scrubLocked(text string) string {
	for _, v := range s.secrets {
		text = strings.ReplaceAll(text, v, "[REDACTED]")
	}
	for _, id := range s.ids {
		text = strings.ReplaceAll(text, id, maskID(id))
	}
	return MaskKeyIDs(redactURLQueries(scrubAnswerDumps(scrubCredentialFileDump(text))))
}

// urlQueryPattern matches the query of a URL quoted in an error. The SDK's
// credential providers put the whole signed request URL of STS AssumeRole
// (AccessKeyId, SignatureNonce, Signature, and for a chained role the STS
// token) into their transport errors: a signed request that never reached
// STS could be replayed from a log to obtain credentials.
var urlQueryPattern = regexp.MustCompile(`(https?://[^\s"'?]*)\?[^\s"']*`)

func redactURLQueries(text string) string {
	return urlQueryPattern.ReplaceAllString(text, "${1}?[query not shown]")
}

// keyIDPattern matches what Alibaba Cloud access key ids look like: LTAI
// keys and STS.-prefixed temporary ones.
var keyIDPattern = regexp.MustCompile(`\b(?:LTAI|STS\.)[A-Za-z0-9]{8,}`)

// MaskKeyIDs shows every access-key-id-shaped word of text as its last four
// characters, for text that may quote a key id the source never handed out
// (a profile's, an STS answer's).
func MaskKeyIDs(text string) string {
	return keyIDPattern.ReplaceAllStringFunc(text, maskID)
}

// answerDumpRe matches the SDK's errors that quote a credential server's
// answer whole: the credentials URI provider ("get|refresh credentials
// from <url> failed: <body>", the body holding the secret when only the
// expiry is missing) and the ECS metadata provider ("..., message =
// <body>"). The URL's query, which may carry a token, goes too.
var answerDumpRe = regexp.MustCompile(`(?s)((?:get|refresh) credentials from )(\S+?)(\?\S*)?( failed)(?:: .*| with error.*)?$|(refresh Ecs sts token err, httpStatus: [0-9]+), message = .*$`)

// scrubAnswerDumps cuts what answerDumpRe matches down to what failed.
func scrubAnswerDumps(text string) string {
	return answerDumpRe.ReplaceAllStringFunc(text, func(m string) string {
		g := answerDumpRe.FindStringSubmatch(m)
		if g[5] != "" {
			return g[5] + " (answer not shown)"
		}
		return g[1] + g[2] + g[4] + " (answer not shown)"
	})
}

// scrubCredentialFileDump cuts the SDK's "unmarshal aliyun cli config from
// '<path>' failed: <the whole file>" down to its first part: a malformed
// ~/.aliyun/config.json would otherwise put the secrets it holds into our
// error.
func scrubCredentialFileDump(text string) string {
	const marker = "unmarshal aliyun cli config from '"
	i := strings.Index(text, marker)
	if i < 0 {
		return text
	}
	rest := text[i+len(marker):]
	j := strings.Index(rest, "' failed")
	if j < 0 {
		return text[:i] + "malformed aliyun cli config"
	}
	return text[:i] + "malformed aliyun cli config '" + rest[:j] + "' (content not shown)"
}

// credentialError is a failure of the credential source, already scrubbed.
type credentialError struct{ msg string }

func (e *credentialError) Error() string { return "credentials: " + e.msg }
