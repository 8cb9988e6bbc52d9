package aliyun

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
)

// STSEndpointEnv names the environment variable that points the RAM-role
// and OIDC providers at another STS host (host[:port]). The SDK itself only
// derives the host from ALIBABA_CLOUD_STS_REGION (sts.<region>.aliyuncs.com)
// or ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED, and always speaks HTTPS to it; an
// emulated STS therefore needs TLS and a certificate the process trusts
// (SSL_CERT_FILE).
const STSEndpointEnv = "ALIBABA_CLOUD_STS_ENDPOINT"

// AssumeRole makes the Provider sign with temporary credentials of a RAM
// role, renewed by the SDK 180 s before they expire. With OIDCProviderARN
// and OIDCTokenFile set, the role is assumed with the OIDC token in the
// file (RRSA on ACK; the file is read again at every renewal); otherwise
// Config.Credentials (or, when zero, the default chain) sign AssumeRole.
type AssumeRole struct {
	RoleARN         string
	RoleSessionName string // "" = the SDK's generated name
	OIDCProviderARN string
	OIDCTokenFile   string
	// STSEndpoint is host[:port], always HTTPS; "" = the SDK's choice
	// (STSRegion, ALIBABA_CLOUD_STS_REGION, else sts.aliyuncs.com).
	STSEndpoint string
	STSRegion   string
	// Duration is the session length asked for, 15 min to 1 h; 0 = 1 h.
	Duration time.Duration
}

var roleARNRe = regexp.MustCompile(`^acs:ram::[0-9]+:role/[A-Za-z0-9._-]+$`)

// AssumeRoleFromEnv reads a role from the SDK's own variables
// (ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_ROLE_SESSION_NAME,
// ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE,
// ALIBABA_CLOUD_STS_REGION) and STSEndpointEnv. It returns nil when
// ALIBABA_CLOUD_ROLE_ARN is unset.
func AssumeRoleFromEnv(getenv func(string) string) (*AssumeRole, error) {
	arn := getenv("ALIBABA_CLOUD_ROLE_ARN")
	if arn == "" {
		return nil, nil
	}
	a := &AssumeRole{
		RoleARN:         arn,
		RoleSessionName: getenv("ALIBABA_CLOUD_ROLE_SESSION_NAME"),
		OIDCProviderARN: getenv("ALIBABA_CLOUD_OIDC_PROVIDER_ARN"),
		OIDCTokenFile:   getenv("ALIBABA_CLOUD_OIDC_TOKEN_FILE"),
		STSEndpoint:     getenv(STSEndpointEnv),
		STSRegion:       getenv("ALIBABA_CLOUD_STS_REGION"),
	}
	if err := a.validate(); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	return a, nil
}

func (a *AssumeRole) validate() error {
	if a == nil {
		return nil
	}
	switch {
	case !roleARNRe.MatchString(a.RoleARN):
		return fmt.Errorf("role ARN %q is not acs:ram::<account>:role/<name>", a.RoleARN)
	case (a.OIDCProviderARN == "") != (a.OIDCTokenFile == ""):
		return errors.New("an OIDC role needs both the provider ARN and the token file")
	case a.Duration != 0 && (a.Duration < 15*time.Minute || a.Duration > time.Hour):
		return fmt.Errorf("session duration %s is not between 15m and 1h", a.Duration)
	}
	if a.STSEndpoint != "" {
		if err := validHost(a.STSEndpoint); err != nil {
			return fmt.Errorf("STS endpoint %q: %w (host[:port]; STS is always HTTPS)", a.STSEndpoint, err)
		}
	}
	return nil
}

// provider builds the SDK provider for the role; base signs AssumeRole.
func (a *AssumeRole) provider(base credentials.CredentialsProvider) (credentials.CredentialsProvider, error) {
	seconds := int(a.Duration / time.Second)
	if a.OIDCProviderARN != "" {
		b := credentials.NewOIDCCredentialsProviderBuilder().
			WithRoleArn(a.RoleARN).
			WithOIDCProviderARN(a.OIDCProviderARN).
			WithOIDCTokenFilePath(a.OIDCTokenFile).
			WithRoleSessionName(a.RoleSessionName).
			WithDurationSeconds(seconds).
			WithSTSEndpoint(a.STSEndpoint).
			WithStsRegion(a.STSRegion)
		return b.Build()
	}
	b := credentials.NewRAMRoleARNCredentialsProviderBuilder().
		WithCredentialsProvider(base).
		WithRoleArn(a.RoleARN).
		WithRoleSessionName(a.RoleSessionName).
		WithDurationSeconds(seconds).
		WithStsEndpoint(a.STSEndpoint).
		WithStsRegion(a.STSRegion)
	return b.Build()
}

// String shows the role; nothing in it is secret (the token file's
// content is never read here).
func (a *AssumeRole) String() string {
	if a == nil {
		return "none"
	}
	mode := "RamRoleArn"
	if a.OIDCProviderARN != "" {
		mode = "OIDC"
	}
	ep := a.STSEndpoint
	if ep == "" {
		ep = "default"
	}
	return fmt.Sprintf("AssumeRole{%s %s, STS %s, duration %s}", mode, a.RoleARN, ep, strconv.Itoa(int(a.Duration/time.Second))+"s")
}

// newRoleSource wraps the role's provider like any other source, so that
// its session secrets are scrubbed from errors too.
func newRoleSource(a *AssumeRole, base Credentials) (*credentialSource, error) {
	var signer credentials.CredentialsProvider
	if a.OIDCProviderARN == "" {
		signer = newCredentialSource(base)
	}
	inner, err := a.provider(signer)
	if err != nil {
		return nil, fmt.Errorf("config: AssumeRole: %s", err)
	}
	s := &credentialSource{inner: inner}
	s.remember(base.AccessKeySecret, base.SecurityToken)
	s.rememberID(base.AccessKeyID)
	return s, nil
}
