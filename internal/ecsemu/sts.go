package ecsemu

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// stsVersion is the STS API version emulated. STS is an RPC API like ECS
// (same signature, same error shape) on another host; the emulator serves
// both on one address and tells them apart by Version, which every request
// carries.
const stsVersion = "2015-04-01"

// STSConfig configures the emulated Security Token Service.
type STSConfig struct {
	// AccountID owns the roles and OIDC providers; default the account of
	// the emulated images.
	AccountID string `json:"accountId,omitempty" yaml:"accountId"`
	// TokenLifetime is how long issued credentials stay valid. 0 = what the
	// request's DurationSeconds asks (default 3600 s), as STS does. A test
	// sets it shorter than the 900 s minimum the SDK will ask for, to see
	// refreshes: the Go SDK renews session credentials when 180 s or less
	// of their life remain, so a lifetime of 190 s renews every 10 s.
	TokenLifetime time.Duration `json:"tokenLifetime,omitempty" yaml:"tokenLifetime"`
	// OIDCProviderARN is the only OIDC provider AssumeRoleWithOIDC accepts;
	// "" accepts any well-formed provider ARN of AccountID.
	OIDCProviderARN string `json:"oidcProviderArn,omitempty" yaml:"oidcProviderArn"`
	// OIDCIssuer and OIDCAudience, when set, must equal the token's iss
	// claim and be one of its aud values.
	OIDCIssuer   string `json:"oidcIssuer,omitempty" yaml:"oidcIssuer"`
	OIDCAudience string `json:"oidcAudience,omitempty" yaml:"oidcAudience"`
}

// session is a set of temporary credentials issued by the emulated STS.
type session struct {
	AccessKeyID   string    `json:"accessKeyId"`
	Secret        string    `json:"secret"`
	Token         string    `json:"token"`
	Expires       time.Time `json:"expires"`
	RoleARN       string    `json:"roleArn"`
	SessionName   string    `json:"sessionName"`
	AssumedRoleID string    `json:"assumedRoleId"`
}

// stsActions are the emulated STS actions.
var stsActions = map[string]actionFunc{
	"AssumeRole":         assumeRole,
	"AssumeRoleWithOIDC": assumeRoleWithOIDC,
	"GetCallerIdentity":  getCallerIdentity,
}

// STSActions lists the emulated STS actions.
func STSActions() []string { return sortedKeys(stsActions) }

var (
	roleARNRe     = regexp.MustCompile(`^acs:ram::([0-9]{1,20}):role/([A-Za-z0-9._-]{1,64})$`)
	oidcARNRe     = regexp.MustCompile(`^acs:ram::([0-9]{1,20}):oidc-provider/([A-Za-z0-9._-]{1,128})$`)
	sessionNameRe = regexp.MustCompile(`^[A-Za-z0-9.@_-]{2,64}$`)
)

// Errors of the STS reference (api-sts-2015-04-01-errorcodes, AssumeRole).
func errSTS(status int, code, format string, args ...any) *apiError {
	return newErr(status, code, format, args...)
}

// lookupKey returns the secret that signs a request with this access key
// and SecurityToken, or why the pair is refused. Long-term keys come from
// Config.Credentials and carry no token; STS keys need the token they were
// issued with, before it expires. mu is held.
func (e *Emulator) lookupKey(id, token string, now time.Time) (string, *apiError) {
	if secret, ok := e.creds[id]; ok {
		if token != "" {
			return "", newErr(http.StatusBadRequest, "InvalidSecurityToken.MismatchWithAccessKey", "Specified SecurityToken mismatch with the AccessKey.")
		}
		return secret, nil
	}
	s, ok := e.sessions[id]
	switch {
	case !ok && token != "":
		if e.tokenIssued(token) {
			return "", newErr(http.StatusBadRequest, "InvalidSecurityToken.MismatchWithAccessKey", "Specified SecurityToken mismatch with the AccessKey.")
		}
		return "", newErr(http.StatusBadRequest, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.")
	case !ok:
		return "", newErr(http.StatusBadRequest, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
	case token == "":
		return "", newErr(http.StatusBadRequest, "MissingSecurityToken", "SecurityToken is mandatory for this action.")
	case token != s.Token:
		return "", newErr(http.StatusBadRequest, "InvalidSecurityToken.MismatchWithAccessKey", "Specified SecurityToken mismatch with the AccessKey.")
	case !now.Before(s.Expires):
		e.counters.TokensRefused++
		return "", newErr(http.StatusBadRequest, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")
	}
	return s.Secret, nil
}

func (e *Emulator) tokenIssued(token string) bool {
	for _, s := range e.sessions {
		if s.Token == token {
			return true
		}
	}
	return false
}

// pruneSessions drops sessions expired for more than a day: past that, a
// client presenting one gets Malformed instead of Expired, which is fine
// for a test tool and keeps a long run's memory flat. mu is held.
func (e *Emulator) pruneSessions(now time.Time) {
	if len(e.sessions) < 1024 {
		return
	}
	for id, s := range e.sessions {
		if now.Sub(s.Expires) > 24*time.Hour {
			delete(e.sessions, id)
		}
	}
}

// randomString returns n characters from alphabet, from crypto/rand:
// session secrets must not be guessable from the seed.
func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("ecsemu: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

const alnumMixed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// issue creates a session for roleARN. mu is held.
func (e *Emulator) issue(c *call, roleARN, sessionName string, duration int) session {
	life := time.Duration(duration) * time.Second
	if e.cfg.STS.TokenLifetime > 0 {
		life = e.cfg.STS.TokenLifetime
	}
	tok := make([]byte, 96)
	if _, err := rand.Read(tok); err != nil {
		panic("ecsemu: crypto/rand failed: " + err.Error())
	}
	m := roleARNRe.FindStringSubmatch(roleARN)
	s := session{
		AccessKeyID: "STS.NU" + randomString(25, alnumMixed),
		Secret:      randomString(44, alnumMixed),
		// Real tokens are long base64 strings starting "CAIS".
		Token: "CAIS" + base64.StdEncoding.EncodeToString(tok),
		// ECS and the SDK read expiry at second precision.
		Expires:       c.authNow.UTC().Add(life).Truncate(time.Second),
		RoleARN:       roleARN,
		SessionName:   sessionName,
		AssumedRoleID: roleID(m[2]) + ":" + sessionName,
	}
	e.pruneSessions(c.authNow)
	e.sessions[s.AccessKeyID] = s
	e.counters.TokensIssued++
	return s
}

// roleID is a stable 18-digit id for a role name.
func roleID(name string) string {
	var h uint64 = 1469598103934665603
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	return fmt.Sprintf("3%017d", h%1e17)
}

type stsCredentialsJSON struct {
	AccessKeyId     string
	AccessKeySecret string
	SecurityToken   string
	Expiration      string
}

type assumedRoleUserJSON struct {
	AssumedRoleId string
	Arn           string
}

type assumeRoleBody struct {
	RequestId       string
	AssumedRoleUser assumedRoleUserJSON
	Credentials     stsCredentialsJSON
	SourceIdentity  string `json:",omitempty"`
}

type oidcTokenInfoJSON struct {
	Subject        string
	Issuer         string
	ClientIds      string
	ExpirationTime string
	IssuanceTime   string
}

type assumeRoleWithOIDCBody struct {
	RequestId       string
	AssumedRoleUser assumedRoleUserJSON
	Credentials     stsCredentialsJSON
	OIDCTokenInfo   oidcTokenInfoJSON
}

func (s session) credentialsJSON() stsCredentialsJSON {
	return stsCredentialsJSON{AccessKeyId: s.AccessKeyID, AccessKeySecret: s.Secret, SecurityToken: s.Token, Expiration: s.Expires.Format(timestampForm)}
}

func (s session) userJSON() assumedRoleUserJSON {
	return assumedRoleUserJSON{AssumedRoleId: s.AssumedRoleID, Arn: s.RoleARN + "/" + s.SessionName}
}

// roleParams checks what AssumeRole and AssumeRoleWithOIDC share:
// RoleArn, RoleSessionName, DurationSeconds and Policy.
func (e *Emulator) roleParams(p params, sessionRequired bool) (roleARN, sessionName string, duration int, aerr *apiError) {
	roleARN = p.get("RoleArn")
	if roleARN == "" {
		return "", "", 0, errMissing("RoleArn")
	}
	m := roleARNRe.FindStringSubmatch(roleARN)
	if m == nil {
		return "", "", 0, errSTS(http.StatusBadRequest, "InvalidParameter.RoleArn", "The parameter RoleArn is wrongly formed.")
	}
	if m[1] != e.stsAccount() {
		return "", "", 0, errSTS(http.StatusNotFound, "EntityNotExist.Role", "The role not exists: %s.", truncate(roleARN, 128))
	}
	sessionName = p.get("RoleSessionName")
	switch {
	case sessionName == "" && sessionRequired:
		return "", "", 0, errMissing("RoleSessionName")
	case sessionName == "":
		sessionName = "oidc-session"
	case !sessionNameRe.MatchString(sessionName):
		return "", "", 0, errSTS(http.StatusBadRequest, "InvalidParameter.RoleSessionName", "The parameter RoleSessionName is wrongly formed.")
	}
	duration = 3600
	if v := p.get("DurationSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 900 || n > 3600 {
			return "", "", 0, errSTS(http.StatusBadRequest, "InvalidParameter.DurationSeconds", "The Min/Max value of DurationSeconds is 15min/1hr.")
		}
		duration = n
	}
	if pol := p.get("Policy"); pol != "" && !json.Valid([]byte(pol)) {
		return "", "", 0, errSTS(http.StatusBadRequest, "InvalidParameter.PolicyGrammar", "The parameter Policy has not passed grammar check.")
	}
	return roleARN, sessionName, duration, nil
}

func (e *Emulator) stsAccount() string {
	if e.cfg.STS.AccountID != "" {
		return e.cfg.STS.AccountID
	}
	return strconv.FormatInt(ownerID, 10)
}

// assumeRole issues temporary credentials for a role to a signed caller.
func assumeRole(e *Emulator, c *call) (any, *apiError) {
	roleARN, name, duration, aerr := e.roleParams(c.p, true)
	if aerr != nil {
		return nil, aerr
	}
	s := e.issue(c, roleARN, name, duration)
	return assumeRoleBody{RequestId: c.rid, AssumedRoleUser: s.userJSON(), Credentials: s.credentialsJSON()}, nil
}

// oidcClaims is the part of an OIDC ID token the emulator reads.
type oidcClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp int64           `json:"exp"`
	Iat int64           `json:"iat"`
}

func (cl oidcClaims) audiences() []string {
	var one string
	if json.Unmarshal(cl.Aud, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(cl.Aud, &many)
	return many
}

func errOIDC(code, msg string) *apiError {
	return errSTS(http.StatusUnauthorized, code, "%s", msg)
}

// parseOIDCToken reads a JWT's claims. The signature is NOT verified: the
// emulator has no identity provider's keys to check it with. What it checks
// is the shape (three base64url parts, a JSON header naming an algorithm
// other than none, JSON claims), exp against the clock, and iss and aud
// against the configured issuer and audience.
func (e *Emulator) parseOIDCToken(tok string, now time.Time) (oidcClaims, *apiError) {
	var cl oidcClaims
	if tok == "" {
		return cl, errOIDC("AuthenticationFail.OIDCToken.Invalid", "The OIDCToken can not empty.")
	}
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 {
		return cl, errOIDC("AuthenticationFail.OIDCToken.Invalid", "The number of Jwt field should be divided into 3 parts with '.' .")
	}
	hdr, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	body, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err1 != nil || err2 != nil {
		return cl, errOIDC("AuthenticationFail.OIDCToken.Invalid", "Cannot decode base64 encoded response(format invalided).")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hdr, &h) != nil || json.Unmarshal(body, &cl) != nil {
		return cl, errOIDC("AuthenticationFail.OIDCToken.Invalid", "The Jwt content is invalid that cannot be recognized.")
	}
	if h.Alg == "" || strings.EqualFold(h.Alg, "none") || strings.HasPrefix(h.Alg, "HS") {
		return cl, errOIDC("AuthenticationFail.OIDCToken.Invalid", fmt.Sprintf("The algorithm %s that be specified in Jwt header is unknown.", truncate(h.Alg, 16)))
	}
	if cl.Exp == 0 || !now.Before(time.Unix(cl.Exp, 0)) {
		return cl, errOIDC("AuthenticationFail.OIDCToken.Expired", "This JsonWebToken is expired.")
	}
	if want := e.cfg.STS.OIDCIssuer; want != "" && cl.Iss != want {
		return cl, errOIDC("AuthenticationFail.OIDCToken.IssuerNotMatch", "Invalid issuer.")
	}
	if want := e.cfg.STS.OIDCAudience; want != "" {
		found := false
		for _, a := range cl.audiences() {
			found = found || a == want
		}
		if !found {
			return cl, errOIDC("AuthenticationFail.OIDCToken.AudienceNotMatch", "Invalid audience.")
		}
	}
	return cl, nil
}

// assumeRoleWithOIDC exchanges an OIDC ID token for role credentials. The
// call is not signed (the token is the proof), as in STS.
func assumeRoleWithOIDC(e *Emulator, c *call) (any, *apiError) {
	provider := c.p.get("OIDCProviderArn")
	if provider == "" {
		return nil, errMissing("OIDCProviderArn")
	}
	if m := oidcARNRe.FindStringSubmatch(provider); m == nil {
		return nil, errSTS(http.StatusBadRequest, "InvalidParameter.OIDCProviderArn", "The parameter OIDCProviderArn is wrongly formed.")
	} else if m[1] != e.stsAccount() || (e.cfg.STS.OIDCProviderARN != "" && provider != e.cfg.STS.OIDCProviderARN) {
		return nil, errOIDC("AuthenticationFail.NoPermission", "No such OIDC Provider registered.")
	}
	roleARN, name, duration, aerr := e.roleParams(c.p, false)
	if aerr != nil {
		return nil, aerr
	}
	cl, aerr := e.parseOIDCToken(c.p.get("OIDCToken"), c.authNow)
	if aerr != nil {
		return nil, aerr
	}
	s := e.issue(c, roleARN, name, duration)
	body := assumeRoleWithOIDCBody{RequestId: c.rid, AssumedRoleUser: s.userJSON(), Credentials: s.credentialsJSON()}
	body.OIDCTokenInfo = oidcTokenInfoJSON{
		Subject: cl.Sub, Issuer: cl.Iss, ClientIds: strings.Join(cl.audiences(), ","),
		ExpirationTime: time.Unix(cl.Exp, 0).UTC().Format(timestampForm),
		IssuanceTime:   time.Unix(cl.Iat, 0).UTC().Format(timestampForm),
	}
	return body, nil
}

type callerIdentityBody struct {
	RequestId    string
	IdentityType string
	AccountId    string
	PrincipalId  string
	UserId       string `json:",omitempty"`
	RoleId       string `json:",omitempty"`
	Arn          string
}

// getCallerIdentity says who signed the request: an assumed role for STS
// keys, else a RAM user named after the key (the emulator does not model
// root accounts).
func getCallerIdentity(e *Emulator, c *call) (any, *apiError) {
	acct := e.stsAccount()
	if s, ok := e.sessions[c.accessKey]; ok {
		roleID, _, _ := strings.Cut(s.AssumedRoleID, ":")
		return callerIdentityBody{RequestId: c.rid, IdentityType: "AssumedRoleUser", AccountId: acct,
			PrincipalId: s.AssumedRoleID, RoleId: roleID,
			Arn: strings.Replace(s.RoleARN, ":role/", ":assumed-role/", 1) + "/" + s.SessionName}, nil
	}
	uid := roleID("user/" + c.accessKey)
	return callerIdentityBody{RequestId: c.rid, IdentityType: "RAMUser", AccountId: acct, PrincipalId: uid, UserId: uid,
		Arn: "acs:ram::" + acct + ":user/" + userName(c.accessKey)}, nil
}

// userName is a RAM user name for an access key id: the key's own
// characters, which are all valid in user names.
func userName(key string) string {
	if len(key) > 32 {
		key = key[:32]
	}
	return "emu-" + strings.ToLower(key)
}

func (c STSConfig) validate() error {
	if c.AccountID != "" && !accountID(c.AccountID) {
		return fmt.Errorf("accountId %q is not an account id (digits)", c.AccountID)
	}
	if c.TokenLifetime < 0 {
		return fmt.Errorf("tokenLifetime %s is negative", c.TokenLifetime)
	}
	if c.TokenLifetime > 0 && c.TokenLifetime < time.Second {
		return fmt.Errorf("tokenLifetime %s is under a second; expiry is reported in whole seconds", c.TokenLifetime)
	}
	if c.OIDCProviderARN != "" && !oidcARNRe.MatchString(c.OIDCProviderARN) {
		return fmt.Errorf("oidcProviderArn %q is not acs:ram::<account>:oidc-provider/<name>", c.OIDCProviderARN)
	}
	return nil
}
