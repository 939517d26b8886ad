package storage

import (
	"net/url"
	"strings"
)

// DefaultEndpoint is the endpoint used when Config.Endpoint is empty: Amazon S3.
const DefaultEndpoint = "s3.amazonaws.com"

// Config says how to reach an S3-compatible object store.
type Config struct {
	// Endpoint is host[:port] of the S3 API; DefaultEndpoint (AWS) when empty. A URL such as
	// http://host:port is accepted too, and its scheme then decides between http and https.
	Endpoint string
	// Region of the buckets; when empty it is looked up from the server as needed.
	Region string
	// AccessKey is the access key id of the credentials; with SecretKey empty too, requests
	// are anonymous.
	AccessKey string
	// SecretKey is the secret paired with AccessKey.
	SecretKey string
	// SessionToken is the token of temporary credentials (optional).
	SessionToken string
	// Insecure uses http instead of https.
	Insecure bool
	// PathStyle addresses buckets as host/bucket instead of bucket.host (needed by most
	// self-hosted servers reached by IP address or a single host name).
	PathStyle bool
}

// FromEnv returns c with its empty fields filled from the usual AWS variables, read through
// getenv (os.Getenv in production):
//
//   - AccessKey, SecretKey: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
//   - SessionToken: AWS_SESSION_TOKEN, only when the access key is empty in c too, so that a
//     token is never paired with keys it does not belong to
//   - Region: AWS_REGION, else AWS_DEFAULT_REGION
//   - Endpoint: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS_ENDPOINT (Cedana's name); a URL whose host becomes Endpoint
//     and whose scheme http sets Insecure (the scheme is ignored when Endpoint is already set)
func (c Config) FromEnv(getenv func(string) string) Config {
	first := func(names ...string) string {
		for _, n := range names {
			if v := strings.TrimSpace(getenv(n)); v != "" {
				return v
			}
		}
		return ""
	}
	if c.AccessKey == "" && c.SessionToken == "" {
		c.SessionToken = first("AWS_SESSION_TOKEN")
	}
	if c.AccessKey == "" {
		c.AccessKey = first("AWS_ACCESS_KEY_ID")
	}
	if c.SecretKey == "" {
		c.SecretKey = first("AWS_SECRET_ACCESS_KEY")
	}
	if c.Region == "" {
		c.Region = first("AWS_REGION", "AWS_DEFAULT_REGION")
	}
	if c.Endpoint == "" {
		if raw := first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"); raw != "" {
			c.Endpoint, c.Insecure = splitEndpoint(raw, c.Insecure)
		}
	}
	return c
}

// splitEndpoint turns an endpoint written as a URL (http://host:port/) or as host[:port] into
// host[:port] and whether to use plain http; insecure is kept when raw carries no scheme.
func splitEndpoint(raw string, insecure bool) (host string, useHTTP bool) {
	if !strings.Contains(raw, "://") {
		return strings.TrimRight(raw, "/"), insecure
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw, insecure
	}
	return u.Host, strings.EqualFold(u.Scheme, "http")
}
