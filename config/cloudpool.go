package config

import "regexp"

// Credential pools of the clouds: auth.credentials lists several
// credentials of a Bedrock provider (AWS profiles or static key pairs) or
// of a Vertex provider (service account key files, or Application Default
// Credentials). They make a key pool as auth.keys does for the API-key
// providers: requests spread over them by weight, and one answered 429
// rests while the request moves on to the next.

// CloudCredentialConfig is one credential of auth.credentials.
type CloudCredentialConfig struct {
	// Bedrock: a profile of the shared AWS files (which may itself assume
	// a role), a role to assume through STS (with the profile's
	// credentials, or the default chain's), or a static key pair, each
	// part from an environment variable or a file.
	Profile             string `yaml:"profile"`
	RoleARN             string `yaml:"role_arn"`
	AccessKeyIDEnv      string `yaml:"access_key_id_env"`
	AccessKeyIDFile     string `yaml:"access_key_id_file"`
	SecretAccessKeyEnv  string `yaml:"secret_access_key_env"`
	SecretAccessKeyFile string `yaml:"secret_access_key_file"`
	SessionTokenEnv     string `yaml:"session_token_env"`
	SessionTokenFile    string `yaml:"session_token_file"`
	// Vertex: a service account key file, or ADC: Application Default
	// Credentials.
	CredentialsFile string `yaml:"credentials_file"`
	ADC             bool   `yaml:"adc"`
	// Weight is nil for the default of 1.
	Weight *int `yaml:"weight"`
}

// Source names the credential in metrics and logs, never its secret: the
// profile, the access key id's variable or file, the key file, or "adc".
func (c CloudCredentialConfig) Source() string {
	switch {
	case c.RoleARN != "":
		return "role:" + c.RoleARN
	case c.Profile != "":
		return "profile:" + c.Profile
	case c.AccessKeyIDEnv != "":
		return envSource(c.AccessKeyIDEnv)
	case c.AccessKeyIDFile != "":
		return c.AccessKeyIDFile
	case c.CredentialsFile != "":
		return c.CredentialsFile
	case c.ADC:
		return "adc"
	}
	return ""
}

func (c CloudCredentialConfig) static() bool {
	return c.AccessKeyIDEnv != "" || c.AccessKeyIDFile != "" || c.SecretAccessKeyEnv != "" || c.SecretAccessKeyFile != "" ||
		c.SessionTokenEnv != "" || c.SessionTokenFile != ""
}

func (c CloudCredentialConfig) google() bool { return c.CredentialsFile != "" || c.ADC }

// validateCredentials checks auth.credentials for a provider of this auth
// type (aws_sigv4 or gcp_oauth); other types take none.
func (a AuthConfig) validateCredentials(v *validator, p path) {
	if a.Credentials == nil {
		return
	}
	cp := p.key("credentials")
	switch {
	case a.Type != AuthAWSSigV4 && a.Type != AuthGCP:
		v.errf(cp, `is only used with type "aws_sigv4" or "gcp_oauth"; API keys pool with keys`)
		return
	case len(a.Credentials) == 0:
		v.errf(cp, "needs at least one credential")
	case a.Profile != "" || a.CredentialsFile != "":
		v.errf(cp, "set credentials or the single profile / credentials_file, not both")
	}
	seen := map[string]int{}
	for i, c := range a.Credentials {
		ip := cp.index(i)
		if a.Type == AuthAWSSigV4 {
			c.validateAWS(v, ip)
		} else {
			c.validateGoogle(v, ip)
		}
		if c.Weight != nil && (*c.Weight < 1 || *c.Weight > maxWeight) {
			v.errf(ip.key("weight"), "must be from 1 to %d, got %d", maxWeight, *c.Weight)
		}
		if src := c.Source(); src != "" {
			if j, dup := seen[src]; dup {
				v.errf(ip, "duplicate credential %q (also credentials[%d])", src, j)
			} else {
				seen[src] = i
			}
		}
	}
}

func (c CloudCredentialConfig) validateAWS(v *validator, p path) {
	if c.google() {
		v.errf(p, "credentials_file and adc are for gcp_oauth; aws_sigv4 takes a profile or a static key pair")
	}
	if c.RoleARN != "" && !awsRoleARN.MatchString(c.RoleARN) {
		v.errf(p.key("role_arn"), "%q is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)", c.RoleARN)
	}
	switch {
	case (c.Profile != "" || c.RoleARN != "") && c.static():
		v.errf(p, "set a profile or role_arn, or a static key pair, not both")
	case c.Profile != "":
		if !awsProfile.MatchString(c.Profile) {
			v.errf(p.key("profile"), "%q is not a valid profile name", c.Profile)
		}
	case c.RoleARN != "":
	case !c.static():
		v.errf(p, "needs a profile, a role_arn, or access_key_id_env/_file with secret_access_key_env/_file")
	default:
		validateSecretSource(v, p, "access_key_id", c.AccessKeyIDEnv, c.AccessKeyIDFile, true)
		validateSecretSource(v, p, "secret_access_key", c.SecretAccessKeyEnv, c.SecretAccessKeyFile, true)
		validateSecretSource(v, p, "session_token", c.SessionTokenEnv, c.SessionTokenFile, false)
	}
}

func (c CloudCredentialConfig) validateGoogle(v *validator, p path) {
	if c.Profile != "" || c.RoleARN != "" || c.static() {
		v.errf(p, "profiles, roles and key pairs are for aws_sigv4; gcp_oauth takes credentials_file or adc: true")
	}
	switch {
	case c.CredentialsFile != "" && c.ADC:
		v.errf(p, "set credentials_file or adc: true, not both")
	case !c.google():
		v.errf(p, "needs credentials_file (a service account key file) or adc: true")
	case hasControl(c.CredentialsFile):
		v.errf(p.key("credentials_file"), "must not contain control characters")
	}
}

// validateSecretSource checks one secret of a key pair, NAME_env or
// NAME_file.
func validateSecretSource(v *validator, p path, name, env, file string, required bool) {
	switch {
	case env != "" && file != "":
		v.errf(p, "set only one of %s_env and %s_file", name, name)
	case env == "" && file == "" && required:
		v.errf(p, "one of %s_env and %s_file is required", name, name)
	case env != "" && !isEnvName(env):
		v.errf(p.key(name+"_env"), errEnvName)
	case file != "" && hasControl(file):
		v.errf(p.key(name+"_file"), "must not contain control characters")
	}
}

var awsRoleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$`)
