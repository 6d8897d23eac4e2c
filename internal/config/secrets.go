package config

import (
	"fmt"
	"os"
	"strings"
)

// Secrets. Every secret of the config can come from the environment
// (key: ${NAME}) or from a file (key_file: /run/secrets/name — Docker and
// Kubernetes secrets, systemd's LoadCredential=), so that the config file
// itself holds none. A secret written in the file as it is still works,
// with a warning (Warnings). The values are never printed: Redacted hides
// them, and no error or status carries them.

// secret is one secret key and its _file twin.
type secret struct {
	path, filePath string
	value, file    func(*Config) *string
}

var secrets = []secret{
	{"source.mysql.password", "source.mysql.password_file",
		func(c *Config) *string { return &c.Source.MySQL.Password }, func(c *Config) *string { return &c.Source.MySQL.PasswordFile }},
	{"s3.secret_access_key", "s3.secret_access_key_file",
		func(c *Config) *string { return &c.S3.SecretAccessKey }, func(c *Config) *string { return &c.S3.SecretAccessKeyFile }},
	{"s3.session_token", "s3.session_token_file",
		func(c *Config) *string { return &c.S3.SessionToken }, func(c *Config) *string { return &c.S3.SessionTokenFile }},
	{"http.token", "http.token_file",
		func(c *Config) *string { return &c.HTTP.Token }, func(c *Config) *string { return &c.HTTP.TokenFile }},
	{"stream.nats.password", "stream.nats.password_file",
		func(c *Config) *string { return &c.Stream.NATS.Password }, func(c *Config) *string { return &c.Stream.NATS.PasswordFile }},
	{"stream.nats.token", "stream.nats.token_file",
		func(c *Config) *string { return &c.Stream.NATS.Token }, func(c *Config) *string { return &c.Stream.NATS.TokenFile }},
	{"stream.kinesis.secret_access_key", "stream.kinesis.secret_access_key_file",
		func(c *Config) *string { return &c.Stream.Kinesis.SecretAccessKey }, func(c *Config) *string { return &c.Stream.Kinesis.SecretAccessKeyFile }},
	{"stream.kinesis.session_token", "stream.kinesis.session_token_file",
		func(c *Config) *string { return &c.Stream.Kinesis.SessionToken }, func(c *Config) *string { return &c.Stream.Kinesis.SessionTokenFile }},
}

// readSecretFiles sets every secret given as a file to the file's content,
// without the line ending at its end, and reports the keys it cannot read
// and the secrets given both ways.
func (c *Config) readSecretFiles() []*FieldError {
	var errs []*FieldError
	for _, s := range secrets {
		file := *s.file(c)
		if file == "" {
			continue
		}
		if *s.value(c) != "" {
			errs = append(errs, &FieldError{Path: s.filePath, Msg: fmt.Sprintf("is set, and so is %s: give the secret one way only", s.path)})
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, &FieldError{Path: s.filePath, Msg: fmt.Sprintf("reading the secret: %v", err)})
			continue
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			errs = append(errs, &FieldError{Path: s.filePath, Msg: fmt.Sprintf("%s is empty", file)})
			continue
		}
		*s.value(c) = v
	}
	return errs
}

// literalSecretWarnings are the warnings for secrets written in the config
// file as they are (literal: the keys decoded from text without ${...}).
func literalSecretWarnings(literal map[string]bool) []string {
	var out []string
	for _, s := range secrets {
		if literal[s.path] {
			out = append(out, fmt.Sprintf("%s is written in the config file: take it from the environment (%s: ${NAME}) or a file (%s), so that the file holds no secret",
				s.path, s.path[strings.LastIndexByte(s.path, '.')+1:], s.filePath[strings.LastIndexByte(s.filePath, '.')+1:]))
		}
	}
	return out
}
