package config

import (
	"regexp"
	"strings"
)

// AuthAWSSigV4 is the auth type of a Bedrock provider: every request is
// signed with AWS Signature Version 4, with credentials from the AWS
// default chain (environment, shared files and profile, web identity,
// container and instance metadata).
const AuthAWSSigV4 = "aws_sigv4"

var (
	awsRegion  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	awsProfile = regexp.MustCompile(`^[A-Za-z0-9_.+=,@-]+$`)
)

// bedrockURL is where a Bedrock provider without a url is reached: its
// region's runtime endpoint ("" for a region that is not one).
func (pc ProviderConfig) bedrockURL() string {
	if awsRegion.MatchString(pc.Auth.Region) {
		return "https://bedrock-runtime." + pc.Auth.Region + ".amazonaws.com"
	}
	return ""
}

// validateBedrock checks a Bedrock provider's auth: aws_sigv4 with a
// region, an optional profile, and no static key.
func (pc ProviderConfig) validateBedrock(v *validator, p path) {
	a, ap := pc.Auth, p.key("auth")
	if a.Type != AuthAWSSigV4 {
		v.errf(ap.key("type"), `must be "aws_sigv4" for schema "bedrock", got %q`, a.Type)
	}
	switch {
	case a.Region == "":
		v.errf(ap.key("region"), "is required (for example us-east-1)")
	case !awsRegion.MatchString(a.Region):
		v.errf(ap.key("region"), "%q is not an AWS region (for example us-east-1)", a.Region)
	}
	if a.Profile != "" && !awsProfile.MatchString(a.Profile) {
		v.errf(ap.key("profile"), "%q is not a valid profile name", a.Profile)
	}
	a.validateCredentials(v, ap)
	if a.Header != "" || a.KeyEnv != "" || a.KeyFile != "" || a.Keys != nil {
		v.errf(ap, "aws_sigv4 takes its credentials from the AWS default chain: header, key_env, key_file and keys are not used")
	}
	if strings.TrimSpace(pc.PathPrefix) != "" {
		v.errf(p.key("path_prefix"), "is not used with schema \"bedrock\" (the path is /model/{model}/invoke)")
	}
}
