// Package storage keeps checkpoint archives in S3-compatible object storage.
//
// Locations are written as s3://bucket/key URLs. A [Client] streams archives to and from a
// bucket without staging whole objects on local disk or in memory, and reports failures with
// messages that say what to fix (endpoint, credentials, bucket).
package storage

import (
	"fmt"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Scheme is the URL scheme of object storage locations, as in s3://bucket/key.
const Scheme = "s3"

const schemePrefix = Scheme + "://"

// Location is an object (or, with a key that ends in a prefix, a group of objects) in a bucket.
type Location struct {
	// Bucket is the bucket name.
	Bucket string
	// Key is the object key within the bucket, without a leading "/"; it may be empty.
	Key string
}

// IsURL reports whether s is an s3:// URL (the scheme is matched case-insensitively).
func IsURL(s string) bool {
	return len(s) >= len(schemePrefix) && strings.EqualFold(s[:len(schemePrefix)], schemePrefix)
}

// ParseURL parses "s3://bucket/key". ok is false, with a nil error, when s is not an s3:// URL
// (for instance a local path). An s3:// URL without a valid bucket name is an error.
func ParseURL(s string) (loc Location, ok bool, err error) {
	if !IsURL(s) {
		return Location{}, false, nil
	}
	rest := s[len(schemePrefix):]
	bucket, key, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return Location{}, true, fmt.Errorf("invalid S3 URL %q: no bucket name; use s3://bucket/key", s)
	}
	if err := s3utils.CheckValidBucketName(bucket); err != nil {
		return Location{}, true, fmt.Errorf("invalid S3 URL %q: bucket %q: %w", s, bucket, err)
	}
	return Location{Bucket: bucket, Key: key}, true, nil
}

// String formats l as an s3:// URL: s3://bucket/key, or s3://bucket when the key is empty.
func (l Location) String() string {
	if l.Key == "" {
		return schemePrefix + l.Bucket
	}
	return schemePrefix + l.Bucket + "/" + l.Key
}

// Join returns the location of name under l's key used as a prefix, with exactly one "/"
// between them (an empty key yields name itself).
func (l Location) Join(name string) Location {
	prefix := strings.TrimRight(l.Key, "/")
	name = strings.TrimLeft(name, "/")
	switch {
	case prefix == "":
		l.Key = name
	case name == "":
		l.Key = prefix
	default:
		l.Key = prefix + "/" + name
	}
	return l
}
